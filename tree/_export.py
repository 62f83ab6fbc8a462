"""Show a fitted tree: indented text, Graphviz DOT, PNG through ``dot``, and the fit trace."""

from __future__ import annotations

import math
import shutil
import subprocess

import numpy as np

from ._entropy import entropy
from ._node import Node, threshold_keys


def _fitted_root(clf) -> Node:
    root = getattr(clf, "root_", None)
    if root is None:
        raise ValueError(f"{type(clf).__name__} is not fitted: call fit first")
    return root


def _edge_text(parent: Node, key) -> str:
    if parent.threshold is not None:
        return f"{parent.feature} {key}"
    return f"{parent.feature} = {key}"


def _leaf_text(node: Node) -> str:
    counts = node.class_counts
    return f"{node.prediction} ({counts[node.prediction]}/{node.n_samples})"


def export_text(clf, *, max_depth: int | None = None) -> str:
    """The tree as indented text, one branch a line, leaves as ``class (majority/rows)``.

    >>> from tree import ID3Classifier
    >>> X = [["sunny", 85], ["sunny", 90], ["overcast", 83], ["rain", 70], ["rain", 65]]
    >>> clf = ID3Classifier().fit(X, ["no", "no", "yes", "yes", "no"])
    >>> print(export_text(clf))
    x0 = overcast: yes (1/1)
    x0 = rain
    |   x1 <= 65: no (1/1)
    |   x1 > 65: yes (1/1)
    x0 = sunny: no (2/2)

    Branches below *max_depth* are cut to ``...``.
    """
    root = _fitted_root(clf)
    if root.is_leaf:
        return _leaf_text(root)
    return "\n".join(_subtree(root, 0, max_depth))


def _subtree(node: Node, depth: int, max_depth):
    """Lines of *node*'s branches (an explicit stack: deep trees do not hit the recursion limit)."""
    out = []
    stack = [(node, depth, iter(node.children.items()))]
    while stack:
        parent, d, it = stack[-1]
        nxt = next(it, None)
        if nxt is None:
            stack.pop()
            continue
        prefix = "|   " * d
        if max_depth is not None and d >= max_depth:
            out.append(prefix + "...")
            stack.pop()
            continue
        key, child = nxt
        text = prefix + _edge_text(parent, key)
        if child.is_leaf:
            out.append(f"{text}: {_leaf_text(child)}")
        else:
            out.append(text)
            stack.append((child, d + 1, iter(child.children.items())))
    return out


def _dot_quote(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def export_graphviz(clf) -> str:
    """The tree as Graphviz DOT text: boxes for splits, ellipses for leaves, values on edges.

    >>> from tree import ID3Classifier
    >>> dot = export_graphviz(ID3Classifier().fit([["a"], ["b"]], ["x", "y"]))
    >>> print(dot.splitlines()[4])
    0 [label="x0\\n2 rows: x 1, y 1"];
    """
    root = _fitted_root(clf)
    lines = [
        "digraph ID3 {",
        'node [shape=box, style="rounded,filled", fillcolor="#f2f2f2", fontname="Helvetica"];',
        'edge [fontname="Helvetica"];',
        "",
    ]
    stack = [root]
    while stack:
        node = stack.pop()
        counts = ", ".join(f"{c} {k}" for c, k in node.class_counts.items())
        if node.is_leaf:
            label = f"{node.prediction}\n{node.n_samples} rows: {counts}"
            lines.append(f"{node.id} [label={_dot_quote(label)}, shape=ellipse];")
            continue
        label = f"{node.feature}\n{node.n_samples} rows: {counts}"
        lines.append(f"{node.id} [label={_dot_quote(label)}];")
        children = node.children
        for key, child in children.items():
            lines.append(f"{node.id} -> {child.id} [label={_dot_quote(key)}];")
        stack.extend(reversed(list(children.values())))
    lines.append("}")
    return "\n".join(lines) + "\n"


def export_png(clf, path) -> None:
    """Render the tree to a PNG file with Graphviz's ``dot`` (Debian package ``graphviz``)."""
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError(
            "Graphviz's dot program is not on PATH; install it (Debian/Ubuntu: "
            "apt-get install graphviz) or use export_graphviz for the DOT text"
        )
    done = subprocess.run(
        [dot, "-Tpng", "-o", str(path)],
        input=export_graphviz(clf),
        text=True,
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"dot failed ({done.returncode}): {done.stderr.strip()}")


# --- the fit trace -------------------------------------------------------------------------


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
    for f in range(enc.codes.shape[0]):
        rank = np.full(int(enc.n_values[f]) + 1, len(y_codes), dtype=np.int64)
        codes, first = np.unique(enc.codes[f], return_index=True)
        rank[codes] = first
        value_rank.append(rank)
    return class_order, value_rank


def _path(clf, node_id: int) -> str:
    tree, steps = clf.tree_, []
    while tree.parent[node_id] >= 0:
        parent = Node(tree, clf.features_, clf.classes_, tree.parent[node_id])
        steps.append(_edge_text(parent, parent.branch_label(tree.branch[node_id])))
        node_id = int(tree.parent[node_id])
    return ", ".join(reversed(steps)) or "root"


def _table(rows):
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def format_trace(clf, record, orders) -> str:
    """One node of the fit trace: the rows there, every candidate's table, the choice."""
    class_order, value_rank = orders
    base = float(clf.log_base)
    names = [str(clf.classes_[k]) for k in class_order]
    counts = record.counts
    n = int(counts.sum())
    shares = ", ".join(f"{names[i]} {counts[k]}/{n}" for i, k in enumerate(class_order))
    rows_text = "1 row" if n == 1 else f"{n} rows"
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
            total = int(c.sum())
            rows.append(
                ["    " + str(code)]
                + [f"{c[k]}/{total}" for k in class_order]
                + [number(entropy(c, base))]
            )
        lines.extend(_table(rows))
        lines.append("    " + _summary(clf.criterion, cand, branches, base, n))
    if record.chosen is not None:
        cand = next(c for c in record.candidates if c.feature == record.chosen)
        lines.append(f"  => split on {clf.features_[record.chosen].name} ({_score(clf, cand)})")
    else:
        majority = clf.classes_[int(np.argmax(counts))]
        lines.append(f"  => leaf: {majority} ({record.reason})")
    return "\n".join(lines)


def _summary(criterion, cand, branches, base, n) -> str:
    sizes = [int(c.sum()) for _, c in branches]
    weighted = sum(s * entropy(c, base) for s, (_, c) in zip(sizes, branches, strict=True))
    parts = []
    if criterion == "unweighted_entropy":
        parts.append(f"sum {number(sum(entropy(c, base) for _, c in branches))}")
    parts.append(f"weighted {number(weighted / max(sum(sizes), 1))}")
    parts.append(f"gain {number(cand.gain)}")
    if criterion == "gain_ratio":
        parts.append(f"split info {number(cand.split_info)}")
        parts.append(f"gain ratio {number(cand.score)}")
    if cand.missing is not None:
        parts.append(f"{int(cand.missing.sum())} of {n} rows missing stay here")
    if not cand.valid:
        parts.append("below min_gain")
    return ", ".join(parts)


def _score(clf, cand) -> str:
    if clf.criterion == "unweighted_entropy":
        return f"lowest sum of entropies {number(-cand.score)}"
    if clf.criterion == "gain_ratio":
        return f"highest gain ratio {number(cand.score)}"
    return f"highest gain {number(cand.gain)}"
