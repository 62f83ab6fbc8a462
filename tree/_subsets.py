"""C4.5's subsets of category values (``categorical_split="subsets"``).

At a node, an attribute's values start as one branch each; the two branches whose merge
scores best (by the criterion) are merged, again and again down to two branches. The split
is the best-scoring configuration of that sequence, the multiway split included; a tie goes
to fewer branches, so values with the same class distribution share a branch even under
plain information gain (which no merge can raise).
"""

from __future__ import annotations

import numpy as np

from ._score import DECIMALS, xlogx


def _score(scorer, n, parent, n_miss, groups_xlogx, sizes_xlogx, entropies_sum):
    gain = (parent - groups_xlogx) / n / scorer.ln_base
    split = (xlogx(n) - sizes_xlogx - xlogx(n_miss)) / n / scorer.ln_base
    if scorer.criterion == "unweighted_entropy":
        score = -entropies_sum / scorer.ln_base
    elif scorer.criterion == "gain_ratio":
        score = gain / np.where(split > 0, split, 1.0)
    else:
        score = gain
    return gain, score, split


def merge_values(scorer, counts, rows, miss, C, n):
    """Merge the values at one node; return ``(group of each value, gain, score, split, ok)``.

    *counts* is ``(k, v)``: the class weights of the node's v known values; *rows* their row
    counts (or None); *miss* and *C* the class weights of the rows missing the attribute and
    of the whole node; *n* its total weight.
    """
    n_miss = miss.sum()
    parent = xlogx(n - n_miss) - xlogx(C - miss).sum()
    group = np.arange(counts.shape[1])
    G = counts.copy()
    R = None if rows is None else rows.astype(np.float64).copy()

    def evaluate(G, R):
        sizes = G.sum(0)
        part = xlogx(sizes) - xlogx(G).sum(0)
        gain, score, split = _score(
            scorer, n, parent, n_miss, part.sum(), xlogx(sizes).sum(), (part / sizes).sum()
        )
        ok = G.shape[1] >= 2 and bool(np.all(scorer._big_enough(sizes, R)))
        return gain, score, split, ok

    best = (*evaluate(G, R), group.copy())
    while G.shape[1] > 2:
        sizes = G.sum(0)
        part = xlogx(sizes) - xlogx(G).sum(0)
        merged = G[:, :, None] + G[:, None, :]  # (k, g, g)
        m_sizes = sizes[:, None] + sizes[None, :]
        m_part = xlogx(m_sizes) - xlogx(merged).sum(0)
        total_part = part.sum() - part[:, None] - part[None, :] + m_part
        size_xlogx = xlogx(sizes).sum() - xlogx(sizes)[:, None] - xlogx(sizes)[None, :]
        size_xlogx = size_xlogx + xlogx(m_sizes)
        ent = (part / sizes).sum() - (part / sizes)[:, None] - (part / sizes)[None, :]
        ent = ent + m_part / m_sizes
        _, score, _ = _score(scorer, n, parent, n_miss, total_part, size_xlogx, ent)
        upper = np.triu(np.ones(score.shape, dtype=bool), 1)
        flat = np.where(upper, np.round(score, DECIMALS), -np.inf).ravel()
        a, b = divmod(int(np.argmax(flat)), G.shape[1])
        group[group == b] = a
        group[group > b] -= 1
        G[:, a] += G[:, b]
        G = np.delete(G, b, axis=1)
        if R is not None:
            R[a] += R[b]
            R = np.delete(R, b)
        found = evaluate(G, R)
        if found[3] and (
            not best[3] or np.round(found[1], DECIMALS) >= np.round(best[1], DECIMALS)
        ):
            best = (*found, group.copy())
    gain, score, split, ok, chosen = best
    return chosen, float(gain), float(score), float(split), ok
