"""A straightforward recursive ID3, written from the textbook, to check the fast builder.

Plain Python: dictionaries of counts and ``math.log``. Categorical attributes split one branch
per value; numeric ones at the best threshold ``x <= v`` (``v`` a value in the node, the
largest left of the cut, lowest ``v`` on ties), chosen by gain. An attribute must split the
node into at least two non-empty branches. Scores are rounded to 10 decimals and the first
attribute wins ties. No missing values.
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


def id3(rows, labels, kinds, criterion="entropy", base=2):
    """Return ``{"counts": {...}}`` for a leaf, plus ``"feature"``/``"children"`` for a split.

    *rows* are tuples of values, *kinds* says per column "categorical" or "numeric"; children
    are keyed by the value, or ``"<= v"``/``"> v"`` for numbers, as ``Node.children``.
    """
    node = {"counts": dict(Counter(labels))}
    if len(node["counts"]) < 2:
        return node
    best = None
    for f, kind in enumerate(kinds):
        if kind == "categorical":
            values = sorted({r[f] for r in rows})
            if len(values) < 2:
                continue
            groups = {v: [i for i, r in enumerate(rows) if r[f] == v] for v in values}
            parts = [[labels[i] for i in g] for g in groups.values()]
            score = round(_score(criterion, labels, parts, base), 10)
            split = ("categorical", f, None, groups)
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
        if best is None or score > best[0]:
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
        sub = id3([rows[i] for i in idx], [labels[i] for i in idx], kinds, criterion, base)
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
