"""Nodes of a fitted tree (views into its flat arrays) and the vectorised walk down the tree."""

from __future__ import annotations

import numpy as np

from ._build import TreeArrays


def format_threshold(value: float) -> str:
    """Write a threshold the shortest way that reads back exactly; whole numbers lose ``.0``.

    >>> format_threshold(2.5), format_threshold(3.0), format_threshold(0.1)
    ('2.5', '3', '0.1')
    """
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def threshold_keys(value: float) -> tuple[str, str]:
    """The two child keys of a numeric split: ``"<= t"`` (left) and ``"> t"`` (right).

    >>> threshold_keys(75.0)
    ('<= 75', '> 75')
    """
    t = format_threshold(value)
    return f"<= {t}", f"> {t}"


class Node:
    """One node of a fitted tree; ``clf.root_`` is the root.

    - ``feature``: the column split on, ``None`` at a leaf.
    - ``children``: a dict from branch to child node. A categorical split has one branch per
      value seen at this node in training, keyed by the value itself (``"Y"``, ``3``,
      ``True``). A numeric split has exactly two, keyed ``"<= t"`` and ``"> t"`` where ``t`` is
      ``threshold`` written as by ``format_threshold`` (``"<= 75"``, ``"> 75"``).
    - ``threshold``: the split value of a numeric split (left is ``<=``), else ``None``.
    - ``prediction``: the majority class (the first in ``classes_`` order on a tie).
    - ``class_counts``: a dict from class to the number of training rows that reached the node.

    Rows whose value for ``feature`` is missing stop here, in training and in prediction, as do
    values that no child covers; they get this node's class distribution.
    """

    __slots__ = ("_tree", "_features", "_classes", "id")

    def __init__(self, tree: TreeArrays, features: list, classes: np.ndarray, node_id: int = 0):
        self._tree = tree
        self._features = features
        self._classes = classes
        self.id = int(node_id)

    def _child(self, node_id):
        return Node(self._tree, self._features, self._classes, node_id)

    @property
    def is_leaf(self) -> bool:
        return bool(self._tree.feature[self.id] < 0)

    @property
    def feature(self) -> str | None:
        f = self._tree.feature[self.id]
        return None if f < 0 else self._features[f].name

    @property
    def threshold(self) -> float | None:
        t = self._tree.threshold[self.id]
        return None if np.isnan(t) else float(t)

    @property
    def depth(self) -> int:
        return int(self._tree.depth[self.id])

    @property
    def n_samples(self) -> int:
        return int(self._tree.counts[self.id].sum())

    @property
    def class_counts(self) -> dict:
        return dict(zip(self._classes.tolist(), self._tree.counts[self.id].tolist(), strict=True))

    @property
    def prediction(self):
        return self._classes[int(np.argmax(self._tree.counts[self.id]))]

    def branch_label(self, code: int):
        """The ``children`` key of the branch with this code (see the class docstring)."""
        f = self._tree.feature[self.id]
        if self._features[f].kind == "numeric":
            return threshold_keys(self._tree.threshold[self.id])[int(code)]
        return self._features[f].categories[int(code)]

    @property
    def children(self) -> dict:
        t = self._tree
        start, count = t.first_child[self.id], t.n_children[self.id]
        if count == 0:
            return {}
        ids = range(int(start), int(start + count))
        return {self.branch_label(t.branch[i]): self._child(i) for i in ids}

    def __repr__(self):
        what = f"feature={self.feature!r}" if not self.is_leaf else "leaf"
        return (
            f"Node({what}, n_samples={self.n_samples}, prediction={self.prediction!r}, "
            f"class_counts={self.class_counts!r})"
        )


def walk(tree: TreeArrays, numeric: np.ndarray, xe: np.ndarray) -> np.ndarray:
    """Return the node where each row stops: a leaf, or the node whose value it lacks.

    *xe* is ``(n_features, n_rows)`` from ``encode_predict``: category codes or numbers, NaN
    for missing and unseen values. All rows move one level per step.
    """
    n_rows = xe.shape[1]
    node = np.zeros(n_rows, dtype=np.int64)
    rows = np.arange(n_rows)
    edges = tree.edge_keys()
    modulus = tree.branch_modulus()
    while len(rows) and len(edges):
        cur = node[rows]
        f = tree.feature[cur]
        inner = f >= 0
        rows, cur, f = rows[inner], cur[inner], f[inner]
        value = xe[f, rows]
        branch = np.where(numeric[f], value > tree.threshold[cur], value)
        known = ~np.isnan(value) & (branch < modulus)  # a larger code is on no edge
        key = cur * modulus + np.where(known, branch, 0).astype(np.int64)
        pos = np.minimum(np.searchsorted(edges, key), len(edges) - 1)
        found = known & (edges[pos] == key)
        rows = rows[found]
        node[rows] = pos[found] + 1
    return node
