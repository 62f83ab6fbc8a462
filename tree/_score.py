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


def xlogx(c, whole: bool = False):
    """``c * ln(c)`` elementwise, 0 at 0; *whole*: every ``c`` is 0 or at least 1.

    >>> xlogx(np.array([0.0, 1.0, 2.0])).round(4).tolist()
    [0.0, 0.0, 1.3863]
    """
    c = np.asarray(c, dtype=np.float64)
    if whole and c.ndim:  # log(max(c, 1)) is log(c) there, 0 at 0: twice as fast as where=
        log = np.maximum(c, 1.0)
        np.log(log, out=log)
    else:
        log = np.log(c, out=np.zeros(c.shape), where=c > 0)  # 0 where c <= 0, like log(1)
    log *= c
    return log if log.ndim else log[()]


def count_keys(keys: np.ndarray, size: int, weights: np.ndarray | None):
    """Return the distinct keys in ascending order and their total weight (count if None).

    Without weights, *keys* may be sorted in place (every caller is done with its order).
    """
    if size <= max(_DENSE, _DENSE_PER_KEY * len(keys)):
        counts = np.bincount(keys, weights, minlength=size)
        present = np.flatnonzero(counts).astype(keys.dtype, copy=False)  # as sorting returns
        return present, counts[present].astype(np.float64, copy=False)
    if weights is None:  # np.unique(keys, return_counts=True) with fewer row-sized copies
        keys.sort()
        new = np.empty(len(keys), dtype=bool)
        new[:1] = True
        np.not_equal(keys[1:], keys[:-1], out=new[1:])
        starts = np.flatnonzero(new)
        del new
        counts = np.empty(len(starts))  # np.diff(starts, append=len(keys)), without copies
        np.subtract(starts[1:], starts[:-1], out=counts[:-1])
        counts[-1:] = len(keys) - starts[-1:]
        return keys[starts], counts
    present, inverse = np.unique(keys, return_inverse=True)
    return present, np.bincount(inverse.reshape(-1), weights, minlength=len(present))


def pairs(keys, size, n_classes, slots, weights):
    """Group ``(node, value, class)`` weights by ``(node, value)``.

    Returns ``pnode, pval, counts`` with ``counts[class, pair]`` (class-major, so that sums
    over the few classes run along the first axis).
    """
    tk, tc = count_keys(keys, size, weights)
    if n_classes * len(tk) >= 2**31:  # the flat index below needs more than int32 then
        tk = tk.astype(np.int64)
    # each step frees what it no longer needs: at the root the arrays are row-sized
    pair = tk // n_classes  # floor_divide by a scalar is much faster than divmod
    new = np.empty(len(pair), dtype=bool)
    new[:1] = True
    np.not_equal(pair[1:], pair[:-1], out=new[1:])
    pair_id = np.cumsum(new, dtype=np.int32 if len(new) < 2**31 else np.int64)
    n_pairs = int(pair_id[-1]) if len(pair_id) else 0
    pair_id -= 1
    first = pair[new]  # each pair's (node, value)
    del new
    pair *= n_classes
    tk -= pair  # the class
    del pair
    tk *= n_pairs
    tk += pair_id
    del pair_id
    counts = np.zeros((n_classes, n_pairs))
    counts.reshape(-1)[tk] = tc
    del tk, tc
    pair = first
    pnode = pair // slots
    pair -= pnode * slots
    return pnode, pair, counts


def class_sum(a: np.ndarray) -> np.ndarray:
    """``a.sum(0)`` for class-major arrays, row by row (much faster for a few classes)."""
    if len(a) > 16:
        return a.sum(0)
    out = a[0].copy()
    for row in a[1:]:
        out += row
    return out


def class_sum_xlogx(a: np.ndarray, whole: bool = False) -> np.ndarray:
    """``class_sum(xlogx(a))``, one class row at a time (no second ``(k, m)`` array)."""
    if len(a) > 16:
        return class_sum(xlogx(a, whole))
    out = xlogx(a[0], whole)
    for row in a[1:]:
        out += xlogx(row, whole)
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
        self.whole = False  # every weight is 1 (the counts are whole numbers)

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
        cuts = _Cuts(self, pnode, counts, rows, level, miss, n_miss)
        n_values_here = np.bincount(pnode, minlength=s)  # distinct known values per node
        # the best cut of each node: highest rounded gain, then lowest value (the first cut).
        # Only boundary cuts are scored (Fayyad and Irani): between two values of one class
        # only, the gain is convex in the cut, so its maximum is at a scored cut.
        idx = cuts.candidates()
        step = len(idx) if len(idx) <= 4 * _BLOCK else _BLOCK  # many cuts go in blocks
        found, found_gain = [], []
        for a in range(0, len(idx), max(step, 1)):
            at = idx[a : a + step]
            gain_c, ok = cuts.gains(at)
            if not ok.all():
                at, gain_c = at[ok], gain_c[ok]
            top = first_max_per_group(pnode[at], np.round(gain_c, DECIMALS))
            found.append(at[top])
            found_gain.append(gain_c[top])
        if len(found) == 1:  # one block: its tops are the nodes' best
            win, gain_c = found[0], found_gain[0]
        else:  # the best of the blocks' best: a node's cuts in several blocks keep the first
            at = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
            gain_c = np.concatenate(found_gain) if found else np.zeros(0)
            top = first_max_per_group(pnode[at], np.round(gain_c, DECIMALS))
            win, gain_c = at[top], gain_c[top]
        nodes, left, right, n_left, n_right, h_left, h_right, won = cuts.winners(win, gain_c)
        gain = np.zeros(s)
        score = np.zeros(s)
        split = np.zeros(s)
        valid = np.zeros(s, dtype=bool)
        cut_value = np.full(s, -1, dtype=np.int64)
        gain[nodes] = won
        if self.criterion == "gain_ratio":
            # C4.5 (Release 8) charges a threshold log2(N - 1) / |D|: N - 1 cuts were tried
            tries = np.maximum(n_values_here[nodes] - 1, 1)
            gain[nodes] -= np.log(tries) / self.ln_base / level["n"][nodes]
        valid[nodes] = True
        cut_value[nodes] = pval[win]
        n_b = level["n"][nodes]
        split[nodes] = self._split_info(n_b, xlogx(n_left) + xlogx(n_right) + xlogx(n_miss[nodes]))
        if self.criterion == "unweighted_entropy":
            score[nodes] = -(h_left / n_left + h_right / n_right) / self.ln_base
        elif self.criterion == "gain_ratio":
            valid[nodes] = gain[nodes] > 0
            score[nodes] = gain[nodes] / np.where(split[nodes] > 0, split[nodes], 1.0)
        else:
            score[nodes] = gain[nodes]
        return gain, score, split, valid, cut_value, (nodes, left, right, miss)


def _same_one_class(counts):
    """Per pair but the last, whether it and the next hold one same class only (None: many
    classes)."""
    k, m = counts.shape
    if k > 62 or m < 2:
        return None
    dtype = next(t for t in (np.uint8, np.uint16, np.uint32, np.uint64) if k <= 8 * t().itemsize)
    bits = np.zeros(m, dtype=dtype)  # which classes each value holds
    for c in range(k):
        bits |= (counts[c] > 0).view(np.uint8).astype(dtype, copy=False) << dtype(c)
    one = (bits[:-1] & (bits[:-1] - dtype(1))) == 0
    one &= bits[:-1] == bits[1:]
    return one


class _Cuts:
    """The cuts of one numeric feature at every node of a level: cut ``j`` is after pair ``j``.

    Left of cut ``j`` are the pairs of ``j``'s node up to ``j``: their cumulative class
    weights are ``cum[:, j] - prev[:, node]``.
    """

    def __init__(self, scorer, pnode, counts, rows, level, miss, n_miss):
        self.scorer, self.pnode, self.level = scorer, pnode, level
        s, m = level["s"], len(pnode)
        self.known_counts = level["C"] - miss
        self.n_known = level["n"] - n_miss
        self.parent = xlogx(self.n_known) - class_sum(xlogx(self.known_counts))
        self.last = np.ones(m, dtype=bool)  # the last value of its node: no cut after it
        np.not_equal(pnode[1:], pnode[:-1], out=self.last[:-1])
        starts = np.flatnonzero(self.last[:-1]) + 1  # where each node but the first starts
        self.one_class = _same_one_class(counts)
        self.cum = np.cumsum(counts, axis=1, out=counts)  # in place: the counts are not kept
        self.prev = np.zeros((scorer.k, s))  # each node's cumulative counts before its start
        self.prev[:, pnode[starts]] = self.cum[:, starts - 1]
        self.rows = None
        if rows is not None:
            self.rcum = np.cumsum(rows)
            self.rprev = np.zeros(s)
            self.rprev[pnode[starts]] = self.rcum[starts - 1]
            self.rows = np.bincount(pnode, rows, s)  # known rows per node
        # with a least leaf size, the cuts allowed form an interval per node: all are checked
        self.ok = None
        if rows is not None or scorer.min_leaf_weight > 0:
            self.ok = self._allowed(np.arange(m)) & ~self.last

    def _allowed(self, at):
        """Whether cuts *at* leave big enough branches on both sides."""
        node = self.pnode[at]
        n_left = class_sum(np.take(self.cum, at, axis=1) - np.take(self.prev, node, axis=1))
        n_right = self.n_known[node] - n_left
        rows_left = rows_right = None
        if self.rows is not None:
            rows_left = self.rcum[at] - self.rprev[node]
            rows_right = self.rows[node] - rows_left
        big = self.scorer._big_enough
        return big(n_left, rows_left) & big(n_right, rows_right)

    def candidates(self) -> np.ndarray:
        """The cuts to score: boundary cuts and the ends of each node's allowed cuts."""
        allowed = ~self.last if self.ok is None else self.ok  # an interval per node
        cand = allowed.copy()
        if self.one_class is not None:
            cand[:-1] &= ~self.one_class
        # the ends (where the known values are one class, every cut has the same gain)
        cand[:1] |= allowed[:1]
        cand[1:] |= allowed[1:] & ~allowed[:-1]
        cand[:-1] |= allowed[:-1] & ~allowed[1:]
        cand[-1:] |= allowed[-1:]
        self.scored = cand
        return np.flatnonzero(cand)

    def stats(self, at):
        """Per cut: node, left and right class weights, their totals, ``n * H``, and gain."""
        node = self.pnode[at]
        # np.take along the pairs: several times faster than indexing [:, at] here
        left = np.take(self.cum, at, axis=1)
        left -= np.take(self.prev, node, axis=1)
        right = np.take(self.known_counts, node, axis=1)
        right -= left
        n_left = class_sum(left)
        n_right = self.n_known[node] - n_left
        whole = self.scorer.whole
        h_left = xlogx(n_left, whole) - class_sum_xlogx(left, whole)
        h_right = xlogx(n_right, whole) - class_sum_xlogx(right, whole)
        n = self.level["n"][node]
        gain = (self.parent[node] - h_left - h_right) / n / self.scorer.ln_base
        return node, left, right, n_left, n_right, h_left, h_right, gain

    def gains(self, at):
        """The gains of cuts *at*, and whether each is allowed."""
        _, _, _, n_left, n_right, _, _, gain = self.stats(at)
        return gain, self._ok(n_left, n_right, at)

    def _ok(self, n_left, n_right, at):
        if self.ok is not None:
            return self.ok[at]
        big = self.scorer._big_enough
        return big(n_left, None) & big(n_right, None)

    def winners(self, win, win_gain):
        """``stats`` of the first cut that ties with each node's best scored cut *win*.

        Only cuts not scored just before a winner can tie with it (the gain is convex
        between scored cuts, and the scored cut before is lower): their gains come in the
        same ``stats`` call as the winners'; a tie (rare) walks back to the first one.
        """
        before = np.maximum(win - 1, 0)
        inner = (win > 0) & ~self.last[before] & ~self.scored[before]  # unscored, same node
        if self.ok is not None:
            inner &= self.ok[before]
        check = np.flatnonzero(inner)
        both = self.stats(np.concatenate([win, before[check]]))
        n = len(win)
        gain, ok = both[-1][n:], self._ok(both[3][n:], both[4][n:], before[check])
        tied = ok & (np.round(gain, DECIMALS) == np.round(win_gain[check], DECIMALS))
        if not tied.any():
            return tuple(a[..., :n] for a in both)
        for i in check[tied]:  # back to the first cut that ties
            best, j = np.round(win_gain[i], DECIMALS), int(win[i])
            while j > 0 and not self.last[j - 1] and not self.scored[j - 1]:
                gain, ok = self.gains(np.array([j - 1]))
                if not ok[0] or np.round(gain[0], DECIMALS) != best:
                    break
                j -= 1
            win[i] = j
        return self.stats(win)
