"""Grow a tree level by level: all nodes of one depth are scored together.

For every feature, one weighted ``np.bincount`` over the keys ``(node, value, class)`` of the
rows still in play gives the class weights of every branch of every node of the level (see
``_score``). No Python loop runs over nodes or rows.

Rows missing the chosen attribute either stay at the node (``fractional=False``, ID3 as the
seed teaches) or go down every branch with the branch's share of the known weight
(``fractional=True``, C4.5's fractional cases): a row then exists as several weighted copies.
"""

from __future__ import annotations

import math

import numpy as np

from ._arrays import TreeArrays
from ._encode import Encoded
from ._entropy import CRITERIA
from ._numbers import float_keys
from ._route import route
from ._score import DECIMALS, Scorer, count_keys, pairs
from ._subsets import merge_values

__all__ = ["CRITERIA", "grow"]


def _gain_ratio_filter(gains, valid, enc, n_train):
    """C4.5's rule: only attributes whose gain is at least the average gain may win.

    The average runs over the attributes that can split the node, leaving out discrete ones
    with at least 0.3 x (training rows) values, unless every attribute is like that (C4.5
    Release 8, ``build.c``).
    """
    many = ~enc.numeric & (enc.n_values >= 0.3 * n_train)
    if many.all():
        many[:] = False
    counted = valid & ~many[:, None]
    n = counted.sum(0)
    average = np.where(counted, gains, 0.0).sum(0) / np.maximum(n, 1)
    return valid & (np.round(gains, DECIMALS) >= np.round(average, DECIMALS)[None, :])


_CHUNK_ROWS = 1 << 18  # score features together up to this many (row, feature) entries
_CHUNK_PAIRS = 1 << 14  # ... and this many (node, value) pairs: the scorer's arrays stay in cache


def _feature_chunks(enc, scorer, n_rows, n_nodes, batch):
    """Features in the order scored, grouped to be scored together.

    With *batch* (whole-number counts, so that sums over several features' counts are exact)
    features of one kind go together while their rows in play and their likely (node, value)
    pairs stay under the bounds above; value subsets are worked out one feature at a time.
    Else one feature at a time, in column order (the trace reads the details by feature).
    """
    if not batch:
        yield from (np.array([f]) for f in range(len(enc.n_values)))
        return
    pairs = np.minimum(n_rows, n_nodes * (enc.n_values + 1))
    alone = scorer.subsets & ~enc.numeric & (enc.n_values > 2)
    floats = np.array([enc.is_float(f) for f in range(len(enc.n_values))], dtype=bool)
    kinds = enc.numeric.astype(np.int64) + floats  # categorical, ranked numbers, float keys
    for kind in (0, 1, 2):
        chunk, n_pairs = [], 0
        for f in np.flatnonzero((kinds == kind) & ~alone):
            full = (len(chunk) + 1) * n_rows > _CHUNK_ROWS or n_pairs + pairs[f] > _CHUNK_PAIRS
            # the keys (feature, node, value, class) stay within int64
            full |= (len(chunk) + 1) * n_nodes * (int(enc.n_values[f]) + 1) * scorer.k >= 2**63
            if chunk and full:
                yield np.array(chunk)
                chunk, n_pairs = [], 0
            chunk.append(f)
            n_pairs += pairs[f]
        if chunk:
            yield np.array(chunk)
    for f in np.flatnonzero(alone):
        yield np.array([f])


def _tiled(level, nf):
    """*level* repeated for *nf* features: node ``j`` of feature ``i`` is group ``i * s + j``."""
    return {"s": nf * level["s"], "C": np.tile(level["C"], (1, nf)), "n": np.tile(level["n"], nf)}


def _choose(xk, rows, y_rows, node, w, frac, level, enc, scorer, min_gain, n_train, with_details):
    """Score every feature for every splittable node of a level; pick each node's best.

    Returns ``best`` (feature per node), ``has_split``, ``cut`` (per node, the code of the
    chosen numeric threshold: its rank, or its float key), ``gain`` (the winner's) and, for
    the trace, every feature's scores and branch counts.
    """
    s, k = level["s"], scorer.k
    n_features = len(enc.n_values)
    # every feature's scores are kept only where they are needed after the loop (C4.5's
    # average-gain filter, the trace); else a running best, where the first feature wins a tie
    keep_all = scorer.criterion == "gain_ratio" or with_details
    table = (n_features, s) if keep_all else (0, s)
    scores = np.full(table, -np.inf)
    gains = np.zeros(table)
    valids = np.zeros(table, dtype=bool)
    cuts = np.full(table, -1, dtype=np.int64)
    top_score, top_f = np.full(s, -np.inf), np.full(s, n_features, dtype=np.int64)
    top_gain, top_cut = np.zeros(s), np.full(s, -1, dtype=np.int64)
    need_rows = scorer.min_leaf > 1
    details = []
    maps = {}  # feature -> {node: each value's branch}, for splits on value subsets
    batch = w is None and not with_details
    scorer.whole = w is None  # every row whole, with weight 1: counts are whole numbers
    for fs in _feature_chunks(enc, scorer, len(node), s, batch):
        nf = len(fs)
        slots = int(enc.n_values[fs].max()) + 1  # every value, plus one slot for missing
        small = nf * s * slots * k < 2**31  # int32 keys: half the memory, a faster sort
        keys = np.empty((nf, len(node)), dtype=np.int32 if small else np.int64)
        for i, f in enumerate(fs):  # feature i of the chunk owns the groups i * s to i * s + s
            if enc.is_float(f):  # (node * slots + float key) * k + class
                np.multiply(node, slots, out=keys[i], dtype=keys.dtype)
                col = enc.floats[f]
                keys[i] += float_keys(col if rows is None else col[rows])
                keys[i] *= k
                keys[i] += y_rows
            else:
                np.multiply(node, slots * k, out=keys[i], dtype=keys.dtype)
                keys[i] += xk[f] if rows is None else xk[f][rows]
            if i:
                keys[i] += i * s * slots * k
        keys = keys.reshape(-1)
        if need_rows:  # in a batch every row is whole (frac is 1); before pairs sorts keys
            pair_rows = count_keys(keys // k, nf * s * slots, frac if nf == 1 else None)[1]
        else:
            pair_rows = None
        pnode, pval, counts = pairs(keys, nf * s * slots * k, k, slots, w)
        del keys
        how = scorer.numeric if enc.numeric[fs[0]] else scorer.categorical
        n_known = int(enc.n_values[fs[0]]) if nf == 1 else np.repeat(enc.n_values[fs], s)
        at = level if nf == 1 else _tiled(level, nf)
        gain, score, split, valid, cut, detail = how(pnode, pval, counts, pair_rows, n_known, at)
        for i, f in enumerate(fs):
            part = slice(i * s, i * s + s)
            g, sc, va = gain[part], score[part], valid[part]
            if scorer.subsets and not enc.numeric[f] and enc.n_values[f] > 2:  # alone
                known_rows = None if pair_rows is None else pair_rows[pval < enc.n_values[f]]
                maps[f] = _subsets(scorer, detail, known_rows, level, int(enc.n_values[f]))
                for j, (_, g_gain, g_score, g_split, ok) in maps[f].items():
                    g[j], sc[j], split[j], va[j] = g_gain, g_score, g_split, ok
                maps[f] = {j: m[0] for j, m in maps[f].items() if m[0] is not None}
            va &= np.round(g, DECIMALS) >= min_gain
            if keep_all:
                gains[f], valids[f], scores[f] = g, va, np.round(sc, DECIMALS)
                if cut is not None:
                    cuts[f] = cut[part]
            else:
                sc = np.where(va, np.round(sc, DECIMALS), -np.inf)
                wins = (sc > top_score) | ((sc == top_score) & (f < top_f))
                top_score[wins], top_f[wins], top_gain[wins] = sc[wins], f, g[wins]
                if cut is not None:
                    top_cut[wins] = cut[part][wins]
            if with_details:
                details.append([g, sc, split, va, cut, detail])
        del pnode, pval, counts, pair_rows, detail  # row-sized: gone before the next chunk
    if scorer.criterion == "gain_ratio":
        filtered = _gain_ratio_filter(gains, valids, enc, n_train)
        for f, d in enumerate(details):
            d.append(valids[f] & ~filtered[f])  # below the average gain
        valids = filtered
    if keep_all:
        scores = np.where(valids, scores, -np.inf)
        top_f = np.argmax(scores, axis=0)  # the first feature wins a tie
        columns = np.arange(s)
        top_score, top_cut, top_gain = (a[top_f, columns] for a in (scores, cuts, gains))
    best, has_split = top_f, top_score > -np.inf
    groups = {
        int(j): maps[best[j]][j]
        for j in np.flatnonzero(has_split)
        if int(best[j]) in maps and j in maps[int(best[j])]
    }
    return best, has_split, top_cut, top_gain, details, groups, maps


def _subsets(scorer, detail, known_rows, level, n_values):
    """Per node with 3 or more values: ``(mapping or None, gain, score, split, valid)``."""
    pnode, pval, counts, miss = detail
    per_node = np.bincount(pnode, minlength=level["s"])
    starts = np.cumsum(per_node) - per_node
    out = {}
    for j in np.flatnonzero(per_node >= 3):
        at = slice(int(starts[j]), int(starts[j] + per_node[j]))
        group, gain, score, split, ok = merge_values(
            scorer,
            counts[:, at],
            None if known_rows is None else known_rows[at],
            miss[:, j],
            level["C"][:, j],
            level["n"][j],
        )
        mapping = None
        if group.max() + 1 < per_node[j]:  # fewer branches than values
            mapping = np.full(n_values, -1, dtype=np.int64)
            mapping[pval[at]] = group
        out[int(j)] = (mapping, gain, score, split, ok)
    return out


_SMALL = [(np.uint8, 2**8), (np.uint16, 2**16), (np.int32, 2**31), (np.int64, 2**63)]


def _value_class(enc, y, k, consume):
    """Per feature, each row's value and class in one small integer: ``value * k + class``.

    Each feature gets the smallest type that holds its own values; with *consume*, a
    feature's codes of that type are reused in place (and ``enc.codes[f]`` becomes None).
    """
    xk, as_type = [], {}
    for f in range(len(enc.n_values)):
        if enc.is_float(f):  # keyed on its own floats, level by level
            xk.append(None)
            continue
        top = int(enc.n_values[f] + 1) * k
        dtype = np.dtype(next(t for t, limit in _SMALL if top < limit))
        if consume and enc.codes[f].dtype == dtype:
            x, enc.codes[f] = enc.codes[f], None
        else:
            x = enc.codes[f].astype(dtype)
        if dtype not in as_type:
            as_type[dtype] = y.astype(dtype)
        x *= k
        x += as_type[dtype]
        xk.append(x)
    return xk


def grow(
    enc: Encoded,
    y: np.ndarray,
    weight: np.ndarray | None,
    n_classes: int,
    *,
    criterion: str,
    log_base: float,
    max_depth: int | None,
    min_samples_split: int,
    min_samples_leaf: float = 1,
    min_leaf_weight: float = 0.0,
    min_gain: float,
    fractional: bool = False,
    trace=None,
    consume_codes: bool = False,
    subsets: bool = False,
):
    """Grow the tree; return ``(tree, gains)`` (per node, the gain of its split, else 0).

    *weight* is each row's weight, or None when every weight is 1. When *trace* is a
    ``_trace.Recorder``, it records every node. With *consume_codes*,
    a feature's codes may become the builder's working array (``enc.codes[f]`` then None).
    Each pass of the loop handles one depth. Only the rows of nodes that may split stay in
    play (``rows``: indices into the columns of ``xk``, which never moves; a row split by a
    missing value appears once per branch; ``y_rows``, ``w``, ``frac``, and ``node``: each
    row's node among the level's splittable nodes). ``rows`` is None while it is every row.
    """
    n_rows = len(y)
    k = n_classes
    xk = _value_class(enc, y, k, consume_codes)
    y_rows = y.astype(np.uint8 if k <= 2**8 else np.int64, copy=False)  # never written
    rows = None
    w = None if weight is None else np.asarray(weight, dtype=np.float64)
    unit = w is None or bool(np.all(w == 1.0))
    w = None if unit else w  # None while every row's weight is 1
    frac = None  # each row's share of a training row; None while every share is 1
    scorer = Scorer(criterion, math.log(log_base), k, float(min_samples_leaf), min_leaf_weight)
    scorer.subsets = subsets

    def may_split(counts, rows, depth):
        ok = ((counts > 0).sum(1) > 1) & (rows >= min_samples_split - 1e-9)
        return ok & (max_depth is None or depth < max_depth)

    C = np.bincount(y_rows, w, minlength=k).astype(np.float64)[None, :]
    R = np.array([float(n_rows)])
    splittable = may_split(C, R, 0)
    # node and rows are row-sized and the builder's memory is theirs and the keys': indices
    # below n_rows take int32
    index = np.int32 if n_rows < 2**31 else np.int64
    node = np.zeros(n_rows if splittable[0] else 0, dtype=index)
    names = ("feature", "threshold", "first_child", "n_children", "gain")
    out = {name: [] for name in names}
    parents, branches, all_counts, all_rows = [np.array([-1])], [np.array([-1])], [C], [R]
    first_id, depth = 0, 0
    all_groups = {}
    cuts = {}  # numeric feature -> [(node ids, codes of their thresholds: ranks or float keys)]
    while len(C):
        m = len(C)
        feature = np.full(m, -1, dtype=np.int64)
        threshold = np.full(m, np.nan)
        first_child = np.full(m, -1, dtype=np.int64)
        n_children = np.zeros(m, dtype=np.int64)
        gain = np.zeros(m)
        if trace is not None:
            trace.new_level(C, R, first_id, depth, min_samples_split)
        level_ids = np.flatnonzero(splittable)
        s = len(level_ids)
        next_C, next_R = np.zeros((0, k)), np.zeros(0)
        if s:
            at = C[level_ids]
            level = {"s": s, "C": np.ascontiguousarray(at.T), "n": at.sum(1)}
            best, has_split, cut, won, details, groups, maps = _choose(
                xk, rows, y_rows, node, w, frac, level, enc, scorer, min_gain, n_rows,
                trace is not None,
            )  # fmt: skip
            if trace is not None:
                trace.record(level_ids, details, best, has_split, enc, maps)
            split_ids = level_ids[has_split]
            feature[split_ids] = best[has_split]
            gain[split_ids] = won[has_split]
            for f in np.flatnonzero(enc.numeric):  # the values of the cuts: after the loop
                chose = has_split & (best == f)
                if chose.any():
                    cuts.setdefault(int(f), []).append((first_id + level_ids[chose], cut[chose]))
            take, child, w, frac, parent, branch, next_C, next_R = route(
                xk, rows, y_rows, node, w, frac, best, has_split, cut, enc, k, s, fractional,
                groups,
            )  # fmt: skip
            for j, mapping in groups.items():
                all_groups[first_id + int(level_ids[j])] = mapping
            unit = unit and len(take) == len(child) and (w is None or bool(np.all(w == 1.0)))
            w = None if unit else w
            per_node = np.bincount(parent, minlength=s)
            first_child[split_ids] = first_id + m + (np.cumsum(per_node) - per_node)[has_split]
            n_children[split_ids] = per_node[has_split]
            parents.append(first_id + level_ids[parent])
            branches.append(branch)
            all_counts.append(next_C)
            all_rows.append(next_R)
            # keep only rows of children that may split in their turn
            splittable = may_split(next_C, next_R, depth + 1)
            stay = splittable[child]
            node = (np.cumsum(splittable) - 1).astype(index)[child[stay]]
            del child
            take = take[stay]
            w = None if w is None else w[stay]
            frac = None if frac is None else frac[stay]
            if len(take) != len(y_rows) or np.any(take != np.arange(len(take))):
                rows = take.astype(index) if rows is None else rows[take]
                y_rows = y_rows[take]
            del take
        for name, values in zip(
            names, (feature, threshold, first_child, n_children, gain), strict=False
        ):
            out[name].append(values)
        if trace is not None:
            trace.end_level()
        first_id += m
        depth += 1
        C, R = next_C, next_R
    xk.clear()  # the working codes go before the values of the thresholds are read
    sizes = [len(f) for f in out["feature"]]
    threshold = np.concatenate(out["threshold"])
    for f, found in cuts.items():  # one feature's values at a time: they may not be kept
        for (ids, _), values in zip(found, enc.thresholds(f, [c for _, c in found]), strict=True):
            threshold[ids] = values
    tree = TreeArrays(
        feature=np.concatenate(out["feature"]),
        threshold=threshold,
        counts=np.concatenate(all_counts),
        first_child=np.concatenate(out["first_child"]),
        n_children=np.concatenate(out["n_children"]),
        branch=np.concatenate(branches).astype(np.int64),
        parent=np.concatenate(parents).astype(np.int64),
        depth=np.repeat(np.arange(len(sizes)), sizes).astype(np.int64),
        n_rows=np.concatenate(all_rows),
        groups=all_groups,
    )
    return tree, np.concatenate(out["gain"])
