"""Send the rows of a level's split nodes down their branches (C4.5's fractional cases too)."""

from __future__ import annotations

import numpy as np

from ._numbers import float_keys
from ._score import _DENSE, _DENSE_PER_KEY, pairs


def _gather(xk, enc, feature, at, k):
    """Each row's value code, ``xk[feature[i]][at[i]] // k``: one gather per feature.

    A float32 column kept as it is gives its float keys. The codes come in the smallest type
    that holds them all.
    """
    per_feature = np.bincount(feature, minlength=len(xk))
    used = np.flatnonzero(per_feature)

    def codes(f, rows):
        if enc.is_float(f):
            return float_keys(enc.floats[f][rows])
        out = xk[f][rows]
        out //= k
        return out

    if len(used) <= 1:  # one feature (or none): no sorting
        return codes(int(used[0]) if len(used) else 0, at)
    types = [np.uint32 if enc.is_float(f) else xk[f].dtype for f in used]
    out = np.empty(len(at), dtype=np.result_type(*types))
    order = np.argsort(feature.astype(np.int16) if len(xk) < 2**15 else feature, kind="stable")
    start = 0
    for f, end in enumerate(np.cumsum(per_feature).tolist()):
        if end > start:
            sel = order[start:end]
            out[sel] = codes(f, at[sel])
            start = end
    return out


def route(xk, rows, y_rows, node, w, frac, best, has_split, cut, enc, k, s, fractional, groups):
    """Send the rows of split nodes down their branch.

    Returns ``take`` (the row copies that move, as indices into the current rows), their
    ``child`` (numbered within the next level), weight and fraction, and the children's
    ``(parent, branch)``, class weights ``(n_children, k)`` and row counts.
    """
    # row-sized arrays are freed as soon as they are used (the fit's memory is theirs)
    split = np.flatnonzero(has_split[node])
    at = node[split]  # the node of each row that moves
    fr = best.astype(np.int32)[at]  # the feature each row is split on
    code = _gather(xk, enc, fr, split if rows is None else rows[split], k)
    known = code < enc.n_values[fr]
    num = enc.numeric[fr]
    del fr
    code[num] = code[num] > cut[at[num]]  # a number's branch: 0 (<=) or 1 (>)
    del num
    lost = split[~known]
    go = split[known]
    del split
    branch = code[known]
    del code
    at = at[known]
    del known
    if groups:  # value subsets: each value's branch at its node
        table = np.tile(np.arange(int(enc.n_values.max()) + 1), (s, 1))
        for j, mapping in groups.items():
            table[j, : len(mapping)] = mapping
        branch = table[at, branch]
    width = int(np.max(np.where(enc.numeric, 2, enc.n_values)[best[has_split]], initial=1))
    key = at * np.int64(width)
    key += branch
    del at, branch
    w_go = None if w is None else w[go]  # None: every weight is 1
    with_class = key * k
    with_class += y_rows[go]
    parent, child_branch, counts = pairs(with_class, s * width * k, k, width, w_go)
    del with_class
    counts = np.ascontiguousarray(counts.T)
    child_key = parent * width + child_branch  # ascending: children are in (parent, branch) order
    if s * width <= max(_DENSE, _DENSE_PER_KEY * len(key)):
        lookup = np.zeros(s * width, dtype=np.int64)
        lookup[child_key] = np.arange(len(child_key))
        child = lookup[key]
    else:
        child = np.searchsorted(child_key, key)
    take, child_w, child_f = go, w_go, None if frac is None else frac[go]  # None: all 1
    n_kids = len(parent)
    if fractional and len(lost):
        # each missing row goes down every branch of its node with the branch's known share
        known_weight = counts.sum(1)
        per_node = np.bincount(parent, minlength=s)
        start = np.cumsum(per_node) - per_node
        share = known_weight / np.bincount(parent, known_weight, s)[parent]
        reps = per_node[node[lost]]
        src = np.repeat(lost, reps)
        within = np.arange(len(src)) - np.repeat(np.cumsum(reps) - reps, reps)
        extra = start[node[src]] + within
        w = np.ones(len(y_rows)) if w is None else w
        frac = np.ones(len(y_rows)) if frac is None else frac
        extra_w = w[src] * share[extra]
        counts += np.bincount(extra * k + y_rows[src], extra_w, n_kids * k).reshape(n_kids, k)
        take = np.concatenate([go, src])
        child = np.concatenate([child, extra])
        child_w = np.concatenate([w[go], extra_w])
        child_f = np.concatenate([frac[go], frac[src] * share[extra]])
    n_rows = np.bincount(child, child_f, n_kids).astype(np.float64, copy=False)
    return take, child, child_w, child_f, parent, child_branch, counts, n_rows
