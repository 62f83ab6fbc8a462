"""Grow an ID3 tree level by level: all nodes of one depth are scored together.

For every feature, one ``np.bincount`` over the keys ``(node, value, class)`` of the rows still
in play gives the class counts of every branch of every node of the level; entropies follow
from a table of ``c * ln(c)`` indexed by those counts. No Python loop runs over nodes or rows.

The tree comes out as flat arrays (``TreeArrays``): the children of a node are consecutive,
ordered by branch, and the nodes of one depth follow those of the depth before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ._encode import Encoded
from ._entropy import xlogx_table

CRITERIA = ("entropy", "gain_ratio", "unweighted_entropy")
DECIMALS = 10  # gains are rounded to this many decimals before comparing: ties are exact
_DENSE = 1 << 22  # count with a dense bincount up to this many keys (or 4x the rows)


@dataclass
class TreeArrays:
    """A fitted tree as flat arrays, one entry per node; node 0 is the root."""

    feature: np.ndarray  # int64: split feature index, -1 at a leaf
    threshold: np.ndarray  # float64: numeric split value (left is <=), NaN otherwise
    counts: np.ndarray  # int64 (n_nodes, n_classes): training rows per class
    first_child: np.ndarray  # int64: id of the first child, -1 at a leaf
    n_children: np.ndarray  # int64
    branch: np.ndarray  # int64: category code (numeric: 0 <=, 1 >) from the parent; -1 at root
    parent: np.ndarray  # int64, -1 at the root
    depth: np.ndarray  # int64
    _edges: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_nodes(self) -> int:
        return len(self.feature)

    def edge_keys(self) -> np.ndarray:
        """Sorted ``parent * M + branch`` for nodes 1..n-1 (node ``i`` is entry ``i - 1``)."""
        if self._edges is None:
            self._edges = self.parent[1:] * self.branch_modulus() + self.branch[1:]
        return self._edges

    def branch_modulus(self) -> int:
        return int(self.branch.max(initial=1)) + 1


@dataclass
class Candidate:
    """One attribute scored at one node, for ``--trace``."""

    feature: int
    branches: list  # (branch code, class counts) in branch order; numeric: 0 is <=, 1 is >
    missing: np.ndarray | None  # class counts of rows missing this attribute, if any
    threshold: float | None
    gain: float
    score: float  # what the criterion maximises
    split_info: float
    valid: bool


@dataclass
class NodeTrace:
    """What the builder saw at one node: its rows, each candidate, and its decision."""

    node: int
    depth: int
    counts: np.ndarray
    candidates: list
    chosen: int | None  # feature index, None for a leaf
    reason: str  # why the node is a leaf, or "split"


def _count_keys(keys: np.ndarray, size: int, n_rows: int):
    """Return the distinct keys in ascending order and how often each occurs."""
    if size <= max(_DENSE, 4 * n_rows):
        counts = np.bincount(keys, minlength=size)
        present = np.flatnonzero(counts)
        return present, counts[present]
    return np.unique(keys, return_counts=True)


def _pairs(keys, size, n_rows, n_classes, slots):
    """Group ``(node, value, class)`` counts by ``(node, value)``.

    Returns ``pnode, pval, counts`` with ``counts[class, pair]`` (class-major, so that sums
    over the few classes run along the first axis).
    """
    tk, tc = _count_keys(keys, size, n_rows)
    pair = tk // n_classes
    new = np.empty(len(pair), dtype=bool)
    new[:1] = True
    np.not_equal(pair[1:], pair[:-1], out=new[1:])
    pid = np.cumsum(new) - 1
    counts = np.zeros((n_classes, int(pid[-1]) + 1 if len(pid) else 0), dtype=np.int64)
    counts[tk - pair * n_classes, pid] = tc
    pk = pair[new]
    pnode = pk // slots
    return pnode, pk - pnode * slots, counts


def _class_sum(a: np.ndarray) -> np.ndarray:
    """``a.sum(0)`` for class-major arrays, row by row (much faster for a few classes)."""
    if len(a) > 16:
        return a.sum(0)
    out = a[0].copy()
    for row in a[1:]:
        out += row
    return out


def _first_max_per_group(group: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of the first largest value of each run of equal *group* ids (runs are contiguous).

    >>> _first_max_per_group(np.array([0, 0, 0, 3, 3]), np.array([1.0, 2.0, 2.0, 5.0, 4.0]))
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


class _Scorer:
    """Scores one feature for every node of a level."""

    def __init__(self, criterion, ln_base, table, n_classes):
        self.criterion = criterion
        self.ln_base = ln_base
        self.table = table
        self.k = n_classes

    def _split_info(self, n, parts_xlogx):
        return (self.table[n] - parts_xlogx) / np.maximum(n, 1) / self.ln_base

    def _known(self, pnode, pval, counts, n_known_values, s):
        """Split off the missing-value pairs: their class counts per node, ``(k, s)``."""
        known = pval < n_known_values
        miss = np.zeros((self.k, s), dtype=np.int64)
        miss[:, pnode[~known]] = counts[:, ~known]
        return pnode[known], pval[known], counts[:, known], miss

    def categorical(self, pnode, pval, counts, n_known_values, level):
        s, t = level["s"], self.table
        pnode, pval, counts, miss = self._known(pnode, pval, counts, n_known_values, s)
        nv = _class_sum(counts)
        child_pair = t[nv] - _class_sum(t[counts])  # nv * H(branch), in nats
        child = np.bincount(pnode, child_pair, s)
        n_branches = np.bincount(pnode, minlength=s)
        n_miss = _class_sum(miss)
        parent = t[level["n"] - n_miss] - _class_sum(t[level["C"] - miss])
        gain = (parent - child) / level["n"] / self.ln_base
        split = self._split_info(level["n"], np.bincount(pnode, t[nv], s) + t[n_miss])
        if self.criterion == "unweighted_entropy":
            score = -np.bincount(pnode, child_pair / nv, s) / self.ln_base
        elif self.criterion == "gain_ratio":
            score = gain / np.where(split > 0, split, 1.0)
        else:
            score = gain
        return gain, score, split, n_branches >= 2, None, (pnode, pval, counts, miss)

    def numeric(self, pnode, pval, counts, n_known_values, level):
        s, t = level["s"], self.table
        pnode, pval, counts, miss = self._known(pnode, pval, counts, n_known_values, s)
        n_miss = _class_sum(miss)
        known_counts = level["C"] - miss
        n_known = level["n"] - n_miss
        parent = t[n_known] - _class_sum(t[known_counts])
        # the left side of a cut after pair j: cumulative counts within j's node
        m = len(pnode)
        first = np.empty(m, dtype=bool)
        first[:1] = True
        np.not_equal(pnode[1:], pnode[:-1], out=first[1:])
        cum = np.cumsum(counts, axis=1)
        starts = np.flatnonzero(first)
        prev = np.zeros((self.k, len(starts)), dtype=np.int64)
        prev[:, 1:] = cum[:, starts[1:] - 1]
        cut = np.ones(m, dtype=bool)  # a cut after the last value of a node leaves nothing right
        cut[:-1] = ~first[1:]
        cut[-1:] = False
        group = np.cumsum(first) - 1
        left = cum[:, cut] - prev[:, group[cut]]
        cnode, cval = pnode[cut], pval[cut]
        right = known_counts[:, cnode] - left
        n_left = _class_sum(left)
        n_right = n_known[cnode] - n_left
        h_left = t[n_left] - _class_sum(t[left])
        h_right = t[n_right] - _class_sum(t[right])
        gain_c = (parent[cnode] - h_left - h_right) / level["n"][cnode] / self.ln_base
        # the best cut of each node: highest rounded gain, then the lowest value
        best = _first_max_per_group(cnode, np.round(gain_c, DECIMALS))
        nodes = cnode[best]
        gain = np.zeros(s)
        score = np.zeros(s)
        split = np.zeros(s)
        valid = np.zeros(s, dtype=bool)
        cut_value = np.full(s, -1, dtype=np.int64)
        gain[nodes] = gain_c[best]
        valid[nodes] = True
        cut_value[nodes] = cval[best]
        nl, nr = n_left[best], n_right[best]
        n_b = level["n"][nodes]
        split[nodes] = self._split_info(n_b, t[nl] + t[nr] + t[n_miss[nodes]])
        if self.criterion == "unweighted_entropy":
            score[nodes] = -(h_left[best] / nl + h_right[best] / nr) / self.ln_base
        elif self.criterion == "gain_ratio":
            score[nodes] = gain[nodes] / np.where(split[nodes] > 0, split[nodes], 1.0)
        else:
            score[nodes] = gain[nodes]
        sides = (nodes, left[:, best], right[:, best], miss)
        return gain, score, split, valid, cut_value, sides


def _choose(xk, node, level, enc, scorer, min_gain, with_details):
    """Score every feature for every splittable node of a level; pick each node's best.

    Returns ``best`` (feature per node), ``has_split``, ``cut`` (per node, the rank of the
    chosen numeric threshold) and, for the trace, every feature's scores and branch counts.
    """
    s, k = level["s"], scorer.k
    n_features = len(enc.n_values)
    scores = np.full((n_features, s), -np.inf)
    cuts = np.full((n_features, s), -1, dtype=np.int64)
    details = []
    for f in range(n_features):
        slots = int(enc.n_values[f]) + 1  # every value, plus one slot for missing
        keys = node * (slots * k) + xk[f]
        pnode, pval, counts = _pairs(keys, s * slots * k, len(node), k, slots)
        how = scorer.numeric if enc.numeric[f] else scorer.categorical
        gain, score, split, valid, cut, detail = how(
            pnode, pval, counts, int(enc.n_values[f]), level
        )
        valid &= np.round(gain, DECIMALS) >= min_gain
        scores[f] = np.where(valid, np.round(score, DECIMALS), -np.inf)
        if cut is not None:
            cuts[f] = cut
        if with_details:
            details.append((gain, score, split, valid, cut, detail))
    best = np.argmax(scores, axis=0)  # the first feature wins a tie
    columns = np.arange(s)
    return best, scores[best, columns] > -np.inf, cuts[best, columns], details


def _route(xk, y_rows, node, best, has_split, cut, enc, k, s):
    """Send the rows of split nodes down their branch; rows missing the value stay put.

    Returns ``go`` (which rows moved), ``child`` (their child, numbered within the next
    level), the children's ``(parent, branch)`` and class counts ``(n_children, k)``.
    """
    fr = best[node]
    code = xk[fr, np.arange(len(node))] // k
    go = has_split[node] & (code < enc.n_values[fr])
    branch = np.where(enc.numeric[fr], code > cut[node], code)[go]
    width = int(np.max(np.where(enc.numeric, 2, enc.n_values)[best[has_split]], initial=1))
    key = node[go] * width + branch
    parent, child_branch, counts = _pairs(key * k + y_rows[go], s * width * k, len(key), k, width)
    child_key = parent * width + child_branch  # ascending: children are in (parent, branch) order
    if s * width <= max(_DENSE, 4 * len(key)):
        lookup = np.zeros(s * width, dtype=np.int64)
        lookup[child_key] = np.arange(len(child_key))
        child = lookup[key]
    else:
        child = np.searchsorted(child_key, key)
    return go, child, parent, child_branch, np.ascontiguousarray(counts.T)


def grow(
    enc: Encoded,
    y: np.ndarray,
    n_classes: int,
    *,
    criterion: str,
    log_base: float,
    max_depth: int | None,
    min_samples_split: int,
    min_gain: float,
    trace: list | None = None,
) -> TreeArrays:
    """Grow the tree; when *trace* is a list, append one ``NodeTrace`` per node to it.

    Each pass of the loop handles one depth. Only the rows of nodes that may split stay in
    play (``xk``, ``y_rows``, and ``node``: each row's node among the level's splittable
    nodes); the data is compacted at most once per level.
    """
    n_rows = enc.codes.shape[1]
    k = n_classes
    # each row's value and class in one small integer: value * k + class
    top = int(enc.n_values.max() + 1) * k
    dtype = np.int16 if top < 2**15 else np.int32 if top < 2**31 else np.int64
    xk = enc.codes.astype(dtype)
    xk *= k
    xk += y.astype(dtype)
    y_rows = y.astype(np.int64)
    scorer = _Scorer(criterion, math.log(log_base), xlogx_table(n_rows), k)

    def may_split(counts, depth):
        ok = ((counts > 0).sum(1) > 1) & (counts.sum(1) >= min_samples_split)
        return ok & (max_depth is None or depth < max_depth)

    C = np.bincount(y_rows, minlength=k)[None, :].astype(np.int64)
    splittable = may_split(C, 0)
    node = np.zeros(n_rows if splittable[0] else 0, dtype=np.int64)
    out = {name: [] for name in ("feature", "threshold", "first_child", "n_children")}
    parents, branches, all_counts = [np.array([-1])], [np.array([-1])], [C]
    first_id, depth = 0, 0
    while len(C):
        m = len(C)
        feature = np.full(m, -1, dtype=np.int64)
        threshold = np.full(m, np.nan)
        first_child = np.full(m, -1, dtype=np.int64)
        n_children = np.zeros(m, dtype=np.int64)
        records = None if trace is None else _new_records(C, first_id, depth, min_samples_split)
        level_ids = np.flatnonzero(splittable)
        s = len(level_ids)
        next_C = np.zeros((0, k), dtype=np.int64)
        if s:
            at = C[level_ids]
            level = {"s": s, "C": np.ascontiguousarray(at.T), "n": at.sum(1)}
            best, has_split, cut, details = _choose(
                xk, node, level, enc, scorer, min_gain, records is not None
            )
            if records is not None:
                _record(records, level_ids, details, best, has_split, enc)
            split_ids = level_ids[has_split]
            feature[split_ids] = best[has_split]
            for f in np.flatnonzero(enc.numeric):
                chose = has_split & (best == f)
                threshold[level_ids[chose]] = enc.uniques[f][cut[chose]]
            go, child, parent, branch, next_C = _route(
                xk, y_rows, node, best, has_split, cut, enc, k, s
            )
            per_node = np.bincount(parent, minlength=s)
            first_child[split_ids] = first_id + m + (np.cumsum(per_node) - per_node)[has_split]
            n_children[split_ids] = per_node[has_split]
            parents.append(first_id + level_ids[parent])
            branches.append(branch)
            all_counts.append(next_C)
            # keep only rows of children that may split in their turn
            splittable = may_split(next_C, depth + 1)
            stay = splittable[child]
            node = (np.cumsum(splittable) - 1)[child[stay]]
            if not (stay.all() and go.all()):
                keep = go.copy()
                keep[go] = stay
                xk, y_rows = np.compress(keep, xk, axis=1), y_rows[keep]
        for name, values in zip(out, (feature, threshold, first_child, n_children), strict=True):
            out[name].append(values)
        if records is not None:
            trace.extend(records)
        first_id += m
        depth += 1
        C = next_C
    sizes = [len(f) for f in out["feature"]]
    return TreeArrays(
        feature=np.concatenate(out["feature"]),
        threshold=np.concatenate(out["threshold"]),
        counts=np.concatenate(all_counts),
        first_child=np.concatenate(out["first_child"]),
        n_children=np.concatenate(out["n_children"]),
        branch=np.concatenate(branches).astype(np.int64),
        parent=np.concatenate(parents).astype(np.int64),
        depth=np.repeat(np.arange(len(sizes)), sizes).astype(np.int64),
    )


def _new_records(C, first_id, depth, min_samples_split):
    """Trace records for the nodes of a level, each with why it would be a leaf."""
    return [
        NodeTrace(first_id + i, depth, c, [], None, _leaf_reason(c, min_samples_split))
        for i, c in enumerate(C)
    ]


def _leaf_reason(counts, min_samples_split) -> str:
    if (counts > 0).sum() <= 1:
        return "pure"
    if counts.sum() < min_samples_split:
        return f"fewer than min_samples_split={min_samples_split} rows"
    return "max_depth reached"  # unless the node is scored: _record then says why


def _record(records, level_nodes, details, best, has_split, enc):
    """Fill the trace records of the splittable nodes of a level (small data only)."""
    for j, i in enumerate(level_nodes):
        rec = records[i]
        for f, (gain, score, split, valid, cut, detail) in enumerate(details):
            if enc.numeric[f]:
                nodes, left, right, miss = detail
                where = np.flatnonzero(nodes == j)
                if len(where) == 0:
                    continue
                w = where[0]
                branches = [(0, left[:, w]), (1, right[:, w])]
                thr = float(enc.uniques[f][cut[j]])
            else:
                pnode, pval, counts, miss = detail
                sel = pnode == j
                branches = list(zip(pval[sel].tolist(), counts[:, sel].T, strict=True))
                thr = None
            rec.candidates.append(
                Candidate(
                    feature=f,
                    branches=branches,
                    missing=miss[:, j] if miss[:, j].sum() else None,
                    threshold=thr,
                    gain=float(gain[j]),
                    score=float(score[j]),
                    split_info=float(split[j]),
                    valid=bool(valid[j]),
                )
            )
        if has_split[j]:
            rec.chosen, rec.reason = int(best[j]), "split"
        else:
            rec.reason = "no attribute splits these rows (or none gains min_gain)"
