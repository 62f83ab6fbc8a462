"""Cut a grown tree back: best-first leaf limit, cost-complexity pruning, impurity decreases.

All three work on the flat arrays alone. Impurities are weighted entropies in bits, as
scikit-learn's entropy criterion: a node's impurity is ``W_t * H(t)``; rows that stopped at an
inner node (a missing value with ``missing="stop"``) form a leaf of their own under it.
"""

from __future__ import annotations

import heapq
import math

import numpy as np

from ._arrays import TreeArrays
from ._score import xlogx


def impurity(counts: np.ndarray) -> np.ndarray:
    """``W * H`` in bits for each row of class weights.

    >>> impurity(np.array([[2.0, 2.0], [3.0, 0.0]])).tolist()
    [4.0, 0.0]
    """
    counts = np.atleast_2d(counts)
    return np.maximum(xlogx(counts.sum(1)) - xlogx(counts).sum(1), 0.0) / math.log(2)


def _residual(tree: TreeArrays) -> np.ndarray:
    """Class weights at each node that went to none of its children."""
    below = np.zeros_like(tree.counts)
    np.add.at(below, tree.parent[1:], tree.counts[1:])
    rest = tree.counts - below
    rest[tree.feature < 0] = 0.0
    return np.where(rest > 1e-9 * tree.counts.sum(1, keepdims=True), rest, 0.0)


def impurity_decrease(tree: TreeArrays) -> np.ndarray:
    """Per node, the weighted impurity its split removes (0 at a leaf), in bits."""
    own = impurity(tree.counts)
    drop = own + 0.0
    np.subtract.at(drop, tree.parent[1:], own[1:])
    drop -= impurity(_residual(tree))
    return np.where(tree.feature >= 0, np.maximum(drop, 0.0), 0.0)


def feature_importances(tree: TreeArrays, n_features: int) -> np.ndarray:
    """scikit-learn's (mean decrease in impurity) importances, summing to 1 (or all 0)."""
    drop = impurity_decrease(tree)
    inner = tree.feature >= 0
    out = np.bincount(tree.feature[inner], drop[inner], n_features)
    total = out.sum()
    return out / total if total > 0 else out


def limit_leaves(tree: TreeArrays, max_leaf_nodes: int) -> TreeArrays:
    """Keep the splits a best-first builder makes before it has *max_leaf_nodes* leaves.

    A node's split does not depend on which other nodes are split, so expanding the grown
    tree best first (largest impurity decrease, then lowest node id) gives the tree that
    growing best first would. A multiway split that would pass the limit is skipped.
    """
    drop = impurity_decrease(tree)
    n_leaves, expanded = 1, np.zeros(tree.n_nodes, dtype=bool)
    heap = [(-drop[0], 0)]
    while heap:
        _, i = heapq.heappop(heap)
        width = int(tree.n_children[i])
        if tree.feature[i] < 0 or n_leaves + width - 1 > max_leaf_nodes:
            continue
        expanded[i] = True
        n_leaves += width - 1
        for c in range(int(tree.first_child[i]), int(tree.first_child[i]) + width):
            heapq.heappush(heap, (-drop[c], c))
    return tree.keep(~expanded)


def _subtree_sums(tree: TreeArrays, active: np.ndarray, leaf_risk, inner_risk):
    """Risk and leaf count of every active node's subtree (its descendants that are active)."""
    is_leaf = active & ((tree.feature < 0) | ~_has_active_children(tree, active))
    risk = np.where(is_leaf, leaf_risk, inner_risk)
    leaves = is_leaf.astype(np.float64)
    for d in range(int(tree.depth.max()), 0, -1):
        at = np.flatnonzero(active & (tree.depth == d))
        np.add.at(risk, tree.parent[at], risk[at])
        np.add.at(leaves, tree.parent[at], leaves[at])
    return risk, leaves, is_leaf


def _has_active_children(tree, active):
    has = np.zeros(tree.n_nodes, dtype=bool)
    ids = np.flatnonzero(active)
    has[tree.parent[ids[ids > 0]]] = True
    return has


def ccp_sequence(tree: TreeArrays, stop_alpha: float | None = None):
    """Weakest-link pruning (Breiman et al., as scikit-learn's ``ccp_alpha``).

    Returns ``(alphas, impurities, leaf_mask)``: the effective alphas at which subtrees go,
    the total leaf impurity (bits, weighted by the share of the training weight) after each
    step, and the nodes that are leaves after the last step. With *stop_alpha*, stops before
    the first step whose alpha is above it.
    """
    total = tree.counts[0].sum()
    leaf_risk = impurity(tree.counts) / total
    inner_risk = impurity(_residual(tree)) / total
    active = np.ones(tree.n_nodes, dtype=bool)
    cut = np.zeros(tree.n_nodes, dtype=bool)
    risk, leaves, is_leaf = _subtree_sums(tree, active, leaf_risk, inner_risk)
    alphas, impurities = [0.0], [float(risk[0])]
    while not is_leaf[0]:
        inner = active & ~is_leaf
        g = np.full(tree.n_nodes, np.inf)
        g[inner] = (leaf_risk[inner] - risk[inner]) / np.maximum(leaves[inner] - 1, 1)
        alpha = float(max(g.min(), 0.0))
        if stop_alpha is not None and alpha > stop_alpha:
            break
        weakest = inner & (g <= alpha + 1e-12 * max(abs(alpha), 1e-300))
        cut |= weakest
        below = weakest.copy()  # deactivate the descendants of the pruned nodes
        for d in range(1, int(tree.depth.max()) + 1):
            at = np.flatnonzero(tree.depth == d)
            below[at] |= below[tree.parent[at]]
        active &= ~(below & ~weakest)
        risk, leaves, is_leaf = _subtree_sums(tree, active, leaf_risk, inner_risk)
        alphas.append(alpha)
        impurities.append(float(risk[0]))
    return np.array(alphas), np.array(impurities), cut
