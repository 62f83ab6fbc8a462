"""The fit trace (``fit(..., trace=print)``, ``python -m tree fit --trace``).

The builder hands a ``Recorder`` what it saw at each level; ``format_trace`` writes one text
block per node: the rows there, every candidate attribute's table, and the choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._entropy import entropy
from ._node import Node, count_text, edge_text, threshold_keys


@dataclass
class Candidate:
    """One attribute scored at one node."""

    feature: int
    branches: list  # (branch code, class weights) in branch order; numeric: 0 is <=, 1 is >
    missing: np.ndarray | None  # class weights of rows missing this attribute, if any
    threshold: float | None
    gain: float
    score: float  # what the criterion maximises
    split_info: float
    valid: bool
    below_average: bool = False  # gain_ratio: gain under the average of the candidates
    groups: np.ndarray | None = None  # each value's subset, when categorical_split="subsets"


@dataclass
class NodeTrace:
    """What the builder saw at one node: its rows, each candidate, and its decision."""

    node: int
    depth: int
    counts: np.ndarray
    candidates: list
    chosen: int | None  # feature index, None for a leaf
    reason: str  # why the node is a leaf, or "split"


class Recorder:
    """Collects ``NodeTrace`` records, level by level, while the tree grows."""

    def __init__(self):
        self.records = []
        self._level = []
        self.tree = None  # the tree as grown, set by the classifier

    def new_level(self, C, R, first_id, depth, min_samples_split):
        self._level = [
            NodeTrace(first_id + i, depth, c, [], None, _leaf_reason(c, r, min_samples_split))
            for i, (c, r) in enumerate(zip(C, R, strict=True))
        ]

    def end_level(self):
        self.records.extend(self._level)

    def record(self, level_nodes, details, best, has_split, enc, maps=None):
        for j, i in enumerate(level_nodes):
            rec = self._level[i]
            for f, detail in enumerate(details):
                gain, score, split, valid, cut, sides = detail[:6]
                if enc.numeric[f]:
                    nodes, left, right, miss = sides
                    where = np.flatnonzero(nodes == j)
                    if len(where) == 0:
                        continue
                    w = where[0]
                    # right = known - left: fractional weights leave residues like -1e-15
                    branches = [(0, np.maximum(left[:, w], 0.0)), (1, np.maximum(right[:, w], 0.0))]
                    thr = float(enc.values(f)[cut[j]])
                else:
                    pnode, pval, counts, miss = sides
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
                        below_average=bool(detail[6][j]) if len(detail) > 6 else False,
                        groups=(maps or {}).get(f, {}).get(j),
                    )
                )
            if has_split[j]:
                rec.chosen, rec.reason = int(best[j]), "split"
            else:
                rec.reason = "no attribute splits these rows (or none gains min_gain)"


def _leaf_reason(counts, rows, min_samples_split) -> str:
    if (counts > 0).sum() <= 1:
        return "pure"
    if rows < min_samples_split - 1e-9:
        return f"fewer than min_samples_split={min_samples_split} rows"
    return "max_depth reached"  # unless the node is scored: record then says why


def number(x: float) -> str:
    """Four decimals, cut (not rounded) and without trailing zeros, as the seed writes them.

    The seed's 0.2965 for a bag of 4 and 3 is 0.29658 cut after four decimals.

    >>> number(0.296583), number(0.276435), number(0.0), number(0.30103), number(-1e-17)
    ('0.2965', '0.2764', '0', '0.301', '0')
    """
    cut = math.trunc(x * 10_000 + math.copysign(1e-6, x)) / 10_000
    text = f"{cut:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def trace_orders(enc, y_codes):
    """Display orders for the trace: classes and category values by first appearance."""
    _, first = np.unique(y_codes, return_index=True)
    class_order = np.argsort(first, kind="stable")
    value_rank = []
    for f in range(len(enc.codes)):
        rank = np.full(int(enc.n_values[f]) + 1, len(y_codes), dtype=np.int64)
        codes, first = np.unique(enc.codes[f], return_index=True)
        rank[codes] = first
        value_rank.append(rank)
    return class_order, value_rank


def _path(clf, node_id: int) -> str:
    tree, steps = clf.tree_, []
    while tree.parent[node_id] >= 0:
        parent = Node(tree, clf.features_, clf.classes_, tree.parent[node_id])
        steps.append(edge_text(parent, parent.branch_label(tree.branch[node_id])))
        node_id = int(tree.parent[node_id])
    return ", ".join(reversed(steps)) or "root"


def _table(rows):
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def format_trace(clf, record, orders, fractional=False) -> str:
    """One node of the fit trace: the rows there, every candidate's table, the choice."""
    class_order, value_rank = orders
    base = float(clf.log_base)
    names = [str(clf.classes_[k]) for k in class_order]
    counts = record.counts
    n = count_text(counts.sum())
    shares = ", ".join(f"{names[i]} {count_text(counts[k])}/{n}" for i, k in enumerate(class_order))
    rows_text = "1 row" if n == "1" else f"{n} rows"
    where = _path(clf, record.node)
    lines = [f"[{where}] {rows_text}: {shares}; entropy {number(entropy(counts, base))}"]
    for cand in record.candidates:
        spec = clf.features_[cand.feature]
        rows = [["  " + spec.name, *names, "entropy"]]
        branches = cand.branches
        if spec.kind == "numeric":
            labels = threshold_keys(cand.threshold)
        else:
            branches = sorted(branches, key=lambda b: value_rank[cand.feature][b[0]])
            labels = {code: spec.categories[code] for code, _ in branches}
        if len(branches) < 2:  # an attribute already split on higher up, say
            only = ", ".join(str(labels[code]) for code, _ in branches) or "missing"
            lines.append(f"  {spec.name}: {only} only here, cannot split")
            continue
        extra = [("?", cand.missing)] if cand.missing is not None else []
        for code, c in [(labels[code], c) for code, c in branches] + extra:
            total = count_text(c.sum())
            rows.append(
                ["    " + str(code)]
                + [f"{count_text(c[k])}/{total}" for k in class_order]
                + [number(entropy(c, base))]
            )
        lines.extend(_table(rows))
        groups = None
        if cand.groups is not None:
            parts = [np.flatnonzero(cand.groups == g) for g in range(int(cand.groups.max()) + 1)]
            groups = " | ".join("+".join(str(spec.categories[c]) for c in p) for p in parts)
        lines.append("    " + _summary(clf.criterion, cand, branches, base, n, fractional, groups))
    if record.chosen is not None:
        cand = next(c for c in record.candidates if c.feature == record.chosen)
        lines.append(f"  => split on {clf.features_[record.chosen].name} ({_score(clf, cand)})")
    else:
        majority = clf.classes_[int(np.argmax(counts))]
        lines.append(f"  => leaf: {majority} ({record.reason})")
    return "\n".join(lines)


def _summary(criterion, cand, branches, base, n, fractional, groups=None) -> str:
    sizes = [float(c.sum()) for _, c in branches]
    weighted = sum(s * entropy(c, base) for s, (_, c) in zip(sizes, branches, strict=True))
    parts = []
    if criterion == "unweighted_entropy":
        parts.append(f"sum {number(sum(entropy(c, base) for _, c in branches))}")
    parts.append(f"weighted {number(weighted / max(sum(sizes), 1e-300))}")
    parts.append(f"gain {number(cand.gain)}")
    if criterion == "gain_ratio":
        parts.append(f"split info {number(cand.split_info)}")
        parts.append(f"gain ratio {number(cand.score)}")
    if groups is not None:
        parts.append(f"scored as the subsets {groups}")
    if cand.missing is not None:
        where = "go down every branch by weight" if fractional else "stay here"
        parts.append(f"{count_text(cand.missing.sum())} of {n} rows missing {where}")
    if not cand.valid:
        parts.append("below min_gain or too small a branch")
    elif cand.below_average:
        parts.append("gain below the average")
    return ", ".join(parts)


def _score(clf, cand) -> str:
    if clf.criterion == "unweighted_entropy":
        return f"lowest sum of entropies {number(-cand.score)}"
    if clf.criterion == "gain_ratio":
        return f"highest gain ratio {number(cand.score)}"
    return f"highest gain {number(cand.gain)}"
