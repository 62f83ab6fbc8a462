"""C4.5's error-based pruning with subtree raising (``prune="error"``, ``confidence``).

Quinlan (C4.5: Programs for Machine Learning, 1993, ch. 4) estimates the errors of a leaf
that holds N training cases, E of them misclassified, as ``N * U_CF(E, N)``: the upper limit
of the binomial confidence interval for the error rate at confidence CF (0.25 by default).
``added_errors`` is Release 8's ``AddErrs`` (``stats.c``): exact for E = 0, interpolated for
E < 1, and the normal approximation with a continuity correction above.

The book's worked example (p. 41), a subtree of three leaves, 6, 9 and 1 cases, no errors:

>>> u = [added_errors(n, 0) / n for n in (6, 9, 1)]
>>> [round(x, 3) for x in u]  # U_25%(0, 6), U_25%(0, 9), U_25%(0, 1)
[0.206, 0.143, 0.75]
>>> round(6 * u[0] + 9 * u[1] + 1 * u[2], 3)  # predicted errors of the subtree
3.273

As one leaf it holds 16 cases with one error; U_25%(1, 16) = 0.157, so 2.51 predicted errors,
fewer than 3.273: the subtree becomes a leaf.

>>> round((1 + added_errors(16, 1)) / 16, 3), round(1 + added_errors(16, 1), 2)
(0.157, 2.51)

``prune_errors`` walks the tree top down as Release 8's ``EstimateErrors`` does: a node becomes
a leaf when the leaf's estimate is no more than 0.1 above that of its subtree and of its
largest branch; else its largest branch replaces it (subtree raising) when that is no more
than 0.1 above the subtree's, and the raised branch is re-estimated with all the node's cases.
"""

from __future__ import annotations

import math

import numpy as np

from ._arrays import TreeArrays

# Release 8's table of confidence levels and normal deviates, interpolated for CF
_VAL = (0.0, 0.001, 0.005, 0.01, 0.05, 0.10, 0.20, 0.40, 1.00)
_DEV = (4.0, 3.09, 2.58, 2.33, 1.65, 1.28, 0.84, 0.25, 0.00)


def _coefficient(cf: float) -> float:
    i = next(i for i, v in enumerate(_VAL) if cf <= v)
    i = max(i, 1)
    z = _DEV[i - 1] + (_DEV[i] - _DEV[i - 1]) * (cf - _VAL[i - 1]) / (_VAL[i] - _VAL[i - 1])
    return z * z


def added_errors(n: float, e: float, cf: float = 0.25) -> float:
    """The errors to add to *e* observed in *n* cases: ``n * U_CF(e, n) - e``."""
    if e < 1e-6:
        return n * (1 - math.exp(math.log(cf) / n))
    if e < 0.9999:
        v0 = n * (1 - math.exp(math.log(cf) / n))
        return v0 + e * (added_errors(n, 1.0, cf) - v0)
    if e + 0.5 >= n:
        return 0.67 * (n - e)
    c = _coefficient(cf)
    pr = (e + 0.5 + c / 2 + math.sqrt(c * ((e + 0.5) * (1 - (e + 0.5) / n) + c / 4))) / (n + c)
    return n * pr - e


class _Node:
    __slots__ = ("feature", "threshold", "counts", "rows", "children", "groups")

    def __init__(self, feature, threshold, counts, rows, children, groups=None):
        self.feature, self.threshold = feature, threshold
        self.counts, self.rows, self.children = counts, rows, children
        self.groups = groups  # value subsets: each category code's branch


def _objects(tree: TreeArrays, i: int = 0) -> _Node:
    kids = {}
    for c in range(int(tree.first_child[i]), int(tree.first_child[i] + tree.n_children[i])):
        kids[int(tree.branch[c])] = _objects(tree, c)
    t = tree.threshold[i]
    node = _Node(int(tree.feature[i]), t, tree.counts[i].copy(), float(tree.n_rows[i]), kids)
    node.groups = tree.groups.get(i)
    return node


def _arrays(root: _Node, k: int) -> TreeArrays:
    """Number the nodes breadth first, children in branch order."""
    order, parent, branch, depth = [root], [-1], [-1], [0]
    first, count = [], []
    i = 0
    while i < len(order):
        node = order[i]
        first.append(len(order) if node.children else -1)
        count.append(len(node.children))
        for b in sorted(node.children):
            order.append(node.children[b])
            parent.append(i)
            branch.append(b)
            depth.append(depth[i] + 1)
        i += 1
    return TreeArrays(
        feature=np.array([n.feature if n.children else -1 for n in order], np.int64),
        threshold=np.array([n.threshold if n.children else np.nan for n in order]),
        counts=np.array([n.counts for n in order]).reshape(len(order), k),
        first_child=np.array(first, np.int64),
        n_children=np.array(count, np.int64),
        branch=np.array(branch, np.int64),
        parent=np.array(parent, np.int64),
        depth=np.array(depth, np.int64),
        n_rows=np.array([n.rows for n in order]),
        groups={i: n.groups for i, n in enumerate(order) if n.children and n.groups is not None},
    )


def prune_errors(tree, enc, y, weight, n_classes, cf=0.25, fractional=True) -> TreeArrays:
    """C4.5's error-based pruning of *tree*, grown on ``enc``/``y``/``weight``."""
    k = n_classes
    values = {}

    def branch_of(f, idx, threshold, groups):
        code = enc.codes[f][idx].astype(np.int64)
        known = code < enc.n_values[f]
        if groups is not None:  # a value the node never saw is -1: on no branch
            code = np.where(known, np.append(groups, -1)[np.minimum(code, len(groups))], -1)
        if enc.numeric[f]:
            if f not in values:
                values[f] = np.append(enc.values(f, keep=False), np.nan)
            code = (values[f][code] > threshold).astype(np.int64)
        return code, known

    def estimate(node, idx, w, fr, update):
        cases = w.sum()
        dist = np.bincount(y[idx], w, k)
        best = int(np.argmax(node.counts))
        if dist.max() > dist[best]:
            best = int(np.argmax(dist))
        leaf_errors = cases - dist[best]
        extra = added_errors(cases, leaf_errors, cf) if cases > 0 else 0.0
        if update:
            node.counts, node.rows = dist, float(fr.sum())
        if not node.children or cases <= 0:
            return leaf_errors + extra
        code, known = branch_of(node.feature, idx, node.threshold, node.groups)
        known_w = w[known].sum()
        tree_errors, largest, top = 0.0, None, -1.0
        covered = np.zeros(len(idx), dtype=bool)
        for b, child in node.children.items():
            sel = known & (code == b)
            if not sel.any():
                continue
            covered |= sel
            factor = w[sel].sum() / known_w
            if factor >= top:
                largest, top = b, factor
            if fractional and not known.all():
                lost = ~known
                sub = (
                    np.concatenate([idx[sel], idx[lost]]),
                    np.concatenate([w[sel], w[lost] * factor]),
                    np.concatenate([fr[sel], fr[lost] * factor]),
                )
            else:
                sub = (idx[sel], w[sel], fr[sel])
            tree_errors += estimate(child, *sub, update)
        stay = ~covered & known if fractional else ~covered  # unseen values (and missing)
        if stay.any():  # these rows stop here and get this node's class
            ws = w[stay]
            e = ws.sum() - np.bincount(y[idx[stay]], ws, k)[best]
            tree_errors += e + added_errors(ws.sum(), e, cf)
        if not update or largest is None:
            return tree_errors
        branch_errors = estimate(node.children[largest], idx, w, fr, False)
        if leaf_errors + extra <= min(branch_errors, tree_errors) + 0.1:
            node.children = {}
            return leaf_errors + extra
        if branch_errors <= tree_errors + 0.1:
            raised = node.children[largest]
            node.feature, node.threshold, node.children, node.groups = (
                raised.feature,
                raised.threshold,
                raised.children,
                raised.groups,
            )
            return estimate(node, idx, w, fr, True)
        return tree_errors

    root = _objects(tree)
    rows = np.arange(len(y))
    estimate(root, rows, np.asarray(weight, dtype=np.float64), np.ones(len(y)), True)
    return _arrays(root, k)
