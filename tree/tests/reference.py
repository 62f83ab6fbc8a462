"""A straightforward recursive ID3, written from the textbook, to check the fast builder.

Plain Python: dictionaries of counts and ``math.log``. Categorical attributes split one branch
per value; numeric ones at the best threshold ``x <= v`` (``v`` a value in the node, the
largest left of the cut, lowest ``v`` on ties), chosen by gain. An attribute must split the
node into at least two non-empty branches. Scores are rounded to 10 decimals and the first
attribute wins ties. No missing values.

``gain_ratio`` is C4.5's rule (Release 8): a numeric attribute's gain is lowered by
``log(N - 1) / n`` for its N distinct values among n rows (and it needs a positive gain), and
only attributes whose gain is at least the average gain of the candidates compete on the
ratio (categorical ones with at least 0.3 x the training rows in values are left out of the
average unless all are).
"""

import math
from collections import Counter


def H(labels, base):
    n = len(labels)
    return -sum(c / n * math.log(c / n, base) for c in Counter(labels).values())


def _score(criterion, parent, groups, base):
    n = len(parent)
    gain = H(parent, base) - sum(len(g) / n * H(g, base) for g in groups)
    if criterion == "entropy":
        return gain
    if criterion == "gain_ratio":
        split = -sum(len(g) / n * math.log(len(g) / n, base) for g in groups)
        return gain / split
    return -sum(H(g, base) for g in groups)


def _gain(parent, groups, base):
    n = len(parent)
    return H(parent, base) - sum(len(g) / n * H(g, base) for g in groups)


def _split_info(groups, base):
    n = sum(len(g) for g in groups)
    return -sum(len(g) / n * math.log(len(g) / n, base) for g in groups)


def id3(rows, labels, kinds, criterion="entropy", base=2, _many=None):
    """Return ``{"counts": {...}}`` for a leaf, plus ``"feature"``/``"children"`` for a split.

    *rows* are tuples of values, *kinds* says per column "categorical" or "numeric"; children
    are keyed by the value, or ``"<= v"``/``"> v"`` for numbers, as ``Node.children``.
    """
    node = {"counts": dict(Counter(labels))}
    if len(node["counts"]) < 2:
        return node
    if _many is None:  # the many-valued attributes, by the whole training set
        many = [k == "categorical" and len({r[f] for r in rows}) >= 0.3 * len(rows)
                for f, k in enumerate(kinds)]  # fmt: skip
        _many = many if not all(many) else [False] * len(kinds)
    best = None
    candidates = []
    for f, kind in enumerate(kinds):
        if kind == "categorical":
            values = sorted({r[f] for r in rows})
            if len(values) < 2:
                continue
            groups = {v: [i for i, r in enumerate(rows) if r[f] == v] for v in values}
            parts = [[labels[i] for i in g] for g in groups.values()]
            score = round(_score(criterion, labels, parts, base), 10)
            split = ("categorical", f, None, groups)
            candidates.append((f, _gain(labels, parts, base), _split_info(parts, base), split))
        else:
            values = sorted({r[f] for r in rows})
            best_cut = None
            for v in values[:-1]:
                left = [labels[i] for i, r in enumerate(rows) if r[f] <= v]
                right = [labels[i] for i, r in enumerate(rows) if r[f] > v]
                gain = round(_score("entropy", labels, [left, right], base), 10)
                if best_cut is None or gain > best_cut[0]:
                    best_cut = (gain, v, left, right)
            if best_cut is None:
                continue
            _, v, left, right = best_cut
            score = round(_score(criterion, labels, [left, right], base), 10)
            groups = {
                "<=": [i for i, r in enumerate(rows) if r[f] <= v],
                ">": [i for i, r in enumerate(rows) if r[f] > v],
            }
            split = ("numeric", f, v, groups)
            gain = _gain(labels, [left, right], base) - math.log(len(values) - 1, base) / len(rows)
            if gain > 0:
                candidates.append((f, gain, _split_info([left, right], base), split))
        if criterion != "gain_ratio" and (best is None or score > best[0]):
            best = (score, split)
    if criterion == "gain_ratio":
        counted = [g for f, g, _, _ in candidates if not _many[f]]
        average = sum(counted) / len(counted) if counted else 0.0
        for _, gain, split_info, split in candidates:
            score = round(gain / split_info, 10)
            if round(gain, 10) >= round(average, 10) and (best is None or score > best[0]):
                best = (score, split)
    if best is None:
        return node
    kind, f, v, groups = best[1]
    node["feature"] = f
    node["children"] = {}
    for key, idx in groups.items():
        if kind == "numeric":
            text = repr(float(v))
            text = text[:-2] if text.endswith(".0") else text
            key = f"{key} {text}"
        sub = id3([rows[i] for i in idx], [labels[i] for i in idx], kinds, criterion, base, _many)
        node["children"][key] = sub
    return node


def as_nested(node, names):
    """Our fitted ``Node`` in the reference's nested-dict form (features by index)."""
    out = {"counts": {k: v for k, v in node.class_counts.items() if v}}
    if node.is_leaf:
        return out
    out["feature"] = names.index(node.feature)
    out["children"] = {key: as_nested(child, names) for key, child in node.children.items()}
    return out


def c45_fractional(rows, labels, weights, base=2, min_rows=2):
    """C4.5's fractional cases, plainly: categorical attributes, information gain.

    A missing value is None. The gain of an attribute is the known share of the weight times
    the gain on the rows that know it; a row missing the chosen attribute goes down every
    branch with the branch's share of the known weight. Returns nested dicts of weighted
    ``counts`` as ``id3`` does (weights stand for rows: ``min_rows`` counts them).
    """
    node = {"counts": {}}
    for c, w in zip(labels, weights, strict=True):
        node["counts"][c] = node["counts"].get(c, 0.0) + w
    total = sum(weights)
    if sum(1 for w in node["counts"].values() if w > 0) < 2 or total < min_rows - 1e-9:
        return node

    def h(ws):
        t = sum(ws)
        return -sum(w / t * math.log(w / t, base) for w in ws if w > 0)

    def dist(idx):
        out = {}
        for i in idx:
            out[labels[i]] = out.get(labels[i], 0.0) + weights[i]
        return list(out.values())

    best = None
    for f in range(len(rows[0])):
        known = [i for i, r in enumerate(rows) if r[f] is not None]
        values = sorted({rows[i][f] for i in known})
        if len(values) < 2:
            continue
        w_known = sum(weights[i] for i in known)
        groups = {v: [i for i in known if rows[i][f] == v] for v in values}
        rest = sum(sum(weights[i] for i in g) / w_known * h(dist(g)) for g in groups.values())
        gain = round(w_known / total * (h(dist(known)) - rest), 10)
        if best is None or gain > best[0]:
            best = (gain, f, groups, w_known)
    if best is None:
        return node
    _, f, groups, w_known = best
    lost = [i for i, r in enumerate(rows) if r[f] is None]
    node["feature"], node["children"] = f, {}
    for v, g in groups.items():
        share = sum(weights[i] for i in g) / w_known
        idx = g + lost
        sub_w = [weights[i] for i in g] + [weights[i] * share for i in lost]
        node["children"][v] = c45_fractional(
            [rows[i] for i in idx], [labels[i] for i in idx], sub_w, base, min_rows
        )
    return node
