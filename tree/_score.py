"""Score every feature for every node of a level from weighted ``(node, value, class)`` counts.

Counts are weights (float64): a row counts with its ``sample_weight`` times its class weight,
times the share of it that reached the node (C4.5's fractional cases). ``c * ln(c)`` is
computed from them; with unit weights the sums are exact and every score is the one an
integer-count ID3 gives.
"""

from __future__ import annotations

import numpy as np

DECIMALS = 10  # gains are rounded to this many decimals before comparing: ties are exact
_DENSE = 1 << 12  # count with a dense bincount up to this many keys
_DENSE_PER_KEY = 4  # ... or this many per row counted
_BLOCK = 1 << 13  # past 4 x this many cuts, the numeric scorer takes them this many at a time


def xlogx(c):
    """``c * ln(c)`` elementwise, 0 at 0.

    >>> xlogx(np.array([0.0, 1.0, 2.0])).round(4).tolist()
    [0.0, 0.0, 1.3863]
    """
    c = np.asarray(c, dtype=np.float64)
    log = np.log(c, out=np.zeros(c.shape), where=c > 0)  # 0 where c <= 0, like log(1)
    log *= c
    return log if log.ndim else log[()]


def count_keys(keys: np.ndarray, size: int, weights: np.ndarray | None):
    """Return the distinct keys in ascending order and their total weight (count if None)."""
    if size <= max(_DENSE, _DENSE_PER_KEY * len(keys)):
        counts = np.bincount(keys, weights, minlength=size)
        present = np.flatnonzero(counts)
        return present, counts[present].astype(np.float64, copy=False)
    if weights is None:
        present, counts = np.unique(keys, return_counts=True)
        return present, counts.astype(np.float64)
    present, inverse = np.unique(keys, return_inverse=True)
    return present, np.bincount(inverse.reshape(-1), weights, minlength=len(present))


def pairs(keys, size, n_classes, slots, weights):
    """Group ``(node, value, class)`` weights by ``(node, value)``.

    Returns ``pnode, pval, counts`` with ``counts[class, pair]`` (class-major, so that sums
    over the few classes run along the first axis).
    """
    tk, tc = count_keys(keys, size, weights)
    pair, cls = np.divmod(tk, n_classes)
    del tk  # the steps below free what they no longer need: their arrays are row-sized
    new = np.empty(len(pair), dtype=bool)
    new[:1] = True
    np.not_equal(pair[1:], pair[:-1], out=new[1:])
    pid = np.cumsum(new)
    pid -= 1
    counts = np.zeros((n_classes, int(pid[-1]) + 1 if len(pid) else 0))
    counts[cls, pid] = tc
    del cls, pid, tc
    pnode, pval = np.divmod(pair[new], slots)
    return pnode, pval, counts


def class_sum(a: np.ndarray) -> np.ndarray:
    """``a.sum(0)`` for class-major arrays, row by row (much faster for a few classes)."""
    if len(a) > 16:
        return a.sum(0)
    out = a[0].copy()
    for row in a[1:]:
        out += row
    return out


def class_sum_xlogx(a: np.ndarray) -> np.ndarray:
    """``class_sum(xlogx(a))``, one class row at a time (no second ``(k, m)`` array)."""
    if len(a) > 16:
        return class_sum(xlogx(a))
    out = xlogx(a[0])
    for row in a[1:]:
        out += xlogx(row)
    return out


def first_max_per_group(group: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of the first largest value of each run of equal *group* ids (runs are contiguous).

    >>> first_max_per_group(np.array([0, 0, 0, 3, 3]), np.array([1.0, 2.0, 2.0, 5.0, 4.0]))
    array([1, 3])
    """
    if len(group) == 0:
        return np.zeros(0, dtype=np.int64)
    new = np.empty(len(group), dtype=bool)
    new[0] = True
    np.not_equal(group[1:], group[:-1], out=new[1:])
    run = np.cumsum(new) - 1
    top = np.maximum.reduceat(values, np.flatnonzero(new))
    at_top = np.flatnonzero(values == top[run])
    first = np.ones(len(at_top), dtype=bool)
    first[1:] = run[at_top][1:] != run[at_top][:-1]
    return at_top[first]


class Scorer:
    """Scores one feature for every node of a level.

    ``level`` holds ``s`` (the number of nodes scored), ``C`` (their class weights, class-major),
    ``n`` (their total weight) and ``rows`` (their row counts). ``min_leaf`` is the fewest rows
    and ``min_leaf_weight`` the least weight a branch may hold.
    """

    def __init__(self, criterion, ln_base, n_classes, min_leaf=1.0, min_leaf_weight=0.0):
        self.criterion = criterion
        self.ln_base = ln_base
        self.k = n_classes
        self.min_leaf = min_leaf
        self.min_leaf_weight = min_leaf_weight
        self.subsets = False  # categorical_split="subsets": see _subsets

    def _split_info(self, n, parts_xlogx):
        return (xlogx(n) - parts_xlogx) / np.maximum(n, 1e-300) / self.ln_base

    def _known(self, pnode, pval, counts, rows, n_known_values, s):
        """Split off the missing-value pairs: their class weights per node, ``(k, s)``."""
        known = pval < (n_known_values if np.ndim(n_known_values) == 0 else n_known_values[pnode])
        miss = np.zeros((self.k, s))
        if known.all():  # no value missing: nothing to split off (and no copies to make)
            return pnode, pval, counts, rows, miss
        miss[:, pnode[~known]] = counts[:, ~known]
        kept_rows = None if rows is None else rows[known]
        return pnode[known], pval[known], counts[:, known], kept_rows, miss

    def _big_enough(self, n_branch, rows_branch):
        ok = n_branch >= self.min_leaf_weight
        if rows_branch is not None:
            ok &= rows_branch >= self.min_leaf - 1e-9
        return ok

    def categorical(self, pnode, pval, counts, rows, n_known_values, level):
        s = level["s"]
        pnode, pval, counts, rows, miss = self._known(pnode, pval, counts, rows, n_known_values, s)
        nv = class_sum(counts)
        child_pair = xlogx(nv) - class_sum_xlogx(counts)  # nv * H(branch), in nats
        child = np.bincount(pnode, child_pair, s)
        n_branches = np.bincount(pnode, minlength=s)
        n_miss = class_sum(miss)
        parent = xlogx(level["n"] - n_miss) - class_sum(xlogx(level["C"] - miss))
        gain = (parent - child) / level["n"] / self.ln_base
        split = self._split_info(level["n"], np.bincount(pnode, xlogx(nv), s) + xlogx(n_miss))
        if self.criterion == "unweighted_entropy":
            score = -np.bincount(pnode, child_pair / nv, s) / self.ln_base
        elif self.criterion == "gain_ratio":
            score = gain / np.where(split > 0, split, 1.0)
        else:
            score = gain
        valid = n_branches >= 2
        small = ~self._big_enough(nv, rows)
        if small.any():
            valid &= np.bincount(pnode[small], minlength=s) == 0
        return gain, score, split, valid, None, (pnode, pval, counts, miss)

    def numeric(self, pnode, pval, counts, rows, n_known_values, level):
        s = level["s"]
        pnode, pval, counts, rows, miss = self._known(pnode, pval, counts, rows, n_known_values, s)
        n_miss = class_sum(miss)
        known_counts = level["C"] - miss
        n_known = level["n"] - n_miss
        parent = xlogx(n_known) - class_sum(xlogx(known_counts))
        # the left side of a cut after pair j: cumulative counts within j's node
        m = len(pnode)
        first = np.ones(m + 1, dtype=bool)  # first[m]: past the last pair
        np.not_equal(pnode[1:], pnode[:-1], out=first[1:m])
        n_values_here = np.bincount(pnode, minlength=s)  # distinct known values per node
        n_groups = int(np.count_nonzero(first[:m]))
        prev = np.zeros((self.k, n_groups))  # each node's cumulative counts before its start
        rprev = None if rows is None else np.zeros(n_groups)
        rows_known = None if rows is None else np.bincount(pnode, rows, s)
        carry, rcarry = np.zeros(self.k), 0.0
        done = 0  # nodes started before the block
        found = []
        step = m if m <= 4 * _BLOCK else _BLOCK  # many cuts go in blocks: their arrays stay small
        for a in range(0, max(m, 1), max(step, 1)):
            b = min(a + step, m)
            block = counts[:, a:b].copy()
            block[:, :1] += carry[:, None]  # the running sum goes on from the block before
            cum = np.cumsum(block, axis=1)
            new = np.flatnonzero(first[a:b])  # nodes that start in the block
            group = np.cumsum(first[a:b]) + (done - 1)
            ids = done + np.arange(len(new))
            prev[:, ids] = np.where(new > 0, cum[:, np.maximum(new - 1, 0)], carry[:, None])
            cut = ~first[a + 1 : b + 1]  # a cut after the last value of a node leaves nothing
            left = cum[:, cut] - prev[:, group[cut]]
            cnode, cval = pnode[a:b][cut], pval[a:b][cut]
            right = known_counts[:, cnode] - left
            n_left = class_sum(left)
            n_right = n_known[cnode] - n_left
            if rows is not None:
                rblock = rows[a:b].copy()
                rblock[:1] += rcarry
                rcum = np.cumsum(rblock)
                rprev[ids] = np.where(new > 0, rcum[np.maximum(new - 1, 0)], rcarry)
                rows_left = rcum[cut] - rprev[group[cut]]
                rows_right = rows_known[cnode] - rows_left
                ok = self._big_enough(n_left, rows_left) & self._big_enough(n_right, rows_right)
                rcarry = rcum[-1] if b > a else rcarry
            else:
                ok = self._big_enough(n_left, None) & self._big_enough(n_right, None)
            if b > a:
                carry = cum[:, -1].copy()
            done += len(new)
            del block, cum, group
            if not ok.all():
                left, right, n_left, n_right = left[:, ok], right[:, ok], n_left[ok], n_right[ok]
                cnode, cval = cnode[ok], cval[ok]
            h_left = xlogx(n_left) - class_sum_xlogx(left)
            h_right = xlogx(n_right) - class_sum_xlogx(right)
            gain_c = (parent[cnode] - h_left - h_right) / level["n"][cnode] / self.ln_base
            # the best cut of each node in the block: highest rounded gain, then lowest value
            top = first_max_per_group(cnode, np.round(gain_c, DECIMALS))
            found.append(
                (cnode[top], cval[top], gain_c[top], left[:, top], right[:, top], n_left[top])
                + (n_right[top], h_left[top], h_right[top])
            )
        cnode, cval, gain_c = (np.concatenate([f[i] for f in found]) for i in range(3))
        left, right = (np.concatenate([f[i] for f in found], axis=1) for i in (3, 4))
        n_left, n_right, h_left, h_right = (
            np.concatenate([f[i] for f in found]) for i in range(5, 9)
        )
        # the best of the blocks' best: a node's cuts in several blocks keep the first top
        best = first_max_per_group(cnode, np.round(gain_c, DECIMALS))
        nodes = cnode[best]
        gain = np.zeros(s)
        score = np.zeros(s)
        split = np.zeros(s)
        valid = np.zeros(s, dtype=bool)
        cut_value = np.full(s, -1, dtype=np.int64)
        gain[nodes] = gain_c[best]
        if self.criterion == "gain_ratio":
            # C4.5 (Release 8) charges a threshold log2(N - 1) / |D|: N - 1 cuts were tried
            tries = np.maximum(n_values_here[nodes] - 1, 1)
            gain[nodes] -= np.log(tries) / self.ln_base / level["n"][nodes]
        valid[nodes] = True
        cut_value[nodes] = cval[best]
        nl, nr = n_left[best], n_right[best]
        n_b = level["n"][nodes]
        split[nodes] = self._split_info(n_b, xlogx(nl) + xlogx(nr) + xlogx(n_miss[nodes]))
        if self.criterion == "unweighted_entropy":
            score[nodes] = -(h_left[best] / nl + h_right[best] / nr) / self.ln_base
        elif self.criterion == "gain_ratio":
            valid[nodes] = gain[nodes] > 0
            score[nodes] = gain[nodes] / np.where(split[nodes] > 0, split[nodes], 1.0)
        else:
            score[nodes] = gain[nodes]
        sides = (nodes, left[:, best], right[:, best], miss)
        return gain, score, split, valid, cut_value, sides
