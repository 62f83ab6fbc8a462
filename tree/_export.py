"""Show a fitted tree: indented text, Graphviz DOT, and PNG through ``dot``."""

from __future__ import annotations

import shutil
import subprocess

from ._node import Node, count_text, edge_text


def _fitted_root(clf) -> Node:
    root = getattr(clf, "root_", None)
    if root is None:
        raise ValueError(f"{type(clf).__name__} is not fitted: call fit first")
    return root


def _leaf_text(node: Node) -> str:
    counts = node.class_counts
    return f"{node.prediction} ({count_text(counts[node.prediction])}/{count_text(node.weight)})"


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
        text = prefix + edge_text(parent, key)
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
        counts = ", ".join(f"{c} {count_text(k)}" for c, k in node.class_counts.items())
        if node.is_leaf:
            label = f"{node.prediction}\n{count_text(node.weight)} rows: {counts}"
            lines.append(f"{node.id} [label={_dot_quote(label)}, shape=ellipse];")
            continue
        label = f"{node.feature}\n{count_text(node.weight)} rows: {counts}"
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
