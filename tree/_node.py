"""Nodes of a fitted tree (views into its flat arrays) and the vectorised walks down the tree."""

from __future__ import annotations

import numpy as np

from ._arrays import TreeArrays


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


def count_text(value: float) -> str:
    """A weight as people write counts: whole numbers without decimals, others with two.

    >>> count_text(3.0), count_text(2.6666), count_text(0.5)
    ('3', '2.67', '0.5')
    """
    value = float(value)
    if abs(value - round(value)) < 1e-9:
        return str(int(round(value)))
    return f"{value:.2f}".rstrip("0")


def edge_text(parent, key) -> str:
    if parent.threshold is not None:
        return f"{parent.feature} {key}"
    if isinstance(key, tuple):  # a subset of values
        return f"{parent.feature} in {{{', '.join(map(str, key))}}}"
    return f"{parent.feature} = {key}"


class Node:
    """One node of a fitted tree; ``clf.root_`` is the root.

    - ``feature``: the column split on, ``None`` at a leaf.
    - ``children``: a dict from branch to child node. A categorical split has one branch per
      value seen at this node in training, keyed by the value itself (``"Y"``, ``3``,
      ``True``). A numeric split has exactly two, keyed ``"<= t"`` and ``"> t"`` where ``t`` is
      ``threshold`` written as by ``format_threshold`` (``"<= 75"``, ``"> 75"``). With
      ``categorical_split="subsets"`` a branch may hold several values: it is keyed by the
      tuple of them (``("a", "b")``).
    - ``threshold``: the split value of a numeric split (left is ``<=``), else ``None``.
    - ``prediction``: the majority class (the first in ``classes_`` order on a tie).
    - ``class_counts``: a dict from class to the training weight that reached the node (the
      number of rows when no ``sample_weight`` or ``class_weight`` is given).
    - ``n_samples``: the training rows that reached the node (a fraction of a row counts as such
      where ``missing="fractional"`` spread a row over the branches).

    With ``missing="stop"``, rows whose value for ``feature`` is missing stop here, in training
    and in prediction; with ``missing="fractional"`` they go down every branch with its share
    of the weight. Values that no child covers stop here and get this node's distribution.
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
    def n_samples(self) -> float:
        rows = float(self._tree.n_rows[self.id])
        return int(rows) if rows == int(rows) else rows

    @property
    def weight(self) -> float:
        return float(self._tree.counts[self.id].sum())

    @property
    def class_counts(self) -> dict:
        counts = [int(c) if c == int(c) else c for c in self._tree.counts[self.id].tolist()]
        return dict(zip(self._classes.tolist(), counts, strict=True))

    @property
    def prediction(self):
        return self._classes[int(np.argmax(self._tree.counts[self.id]))]

    def branch_label(self, code: int):
        """The ``children`` key of the branch with this code (see the class docstring)."""
        f = self._tree.feature[self.id]
        if self._features[f].kind == "numeric":
            return threshold_keys(self._tree.threshold[self.id])[int(code)]
        mapping = self._tree.groups.get(self.id)
        if mapping is not None:  # a subset of values: the tuple of them
            return tuple(self._features[f].categories[c] for c in np.flatnonzero(mapping == code))
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


def branch_widths(features) -> np.ndarray:
    """Per feature, how many branch codes a split on it may have (2 for a numeric one)."""
    return np.array(
        [2 if f.kind == "numeric" else max(len(f.categories), 1) for f in features],
        dtype=np.int64,
    )


def _step(tree: TreeArrays, numeric, widths, xe, rows, cur):
    """One level down for *rows* at inner nodes *cur*: ``(child or -1, value known)``."""
    f = tree.feature[cur]
    value = xe[f, rows]
    known = value == value  # not NaN
    branch = np.where(numeric[f], value > tree.threshold[cur], np.where(known, value, 0))
    branch = branch.astype(np.int64)
    t = tree.child_table(widths, numeric)
    ok = known & (branch >= 0) & (branch < t["width"][cur])  # unseen categories are -1
    nxt = t["child"][t["offset"][cur] + np.where(ok, branch, 0)]
    return np.where(ok & (nxt != cur), nxt, -1), known  # the table holds the node for "stop"


def slot_codes(xe, numeric, widths):
    """*xe* from ``encode_predict`` without *slots*, with each categorical value as its slot."""
    out = np.array(xe)
    for f in np.flatnonzero(~numeric):
        row = out[f]
        row[~((row >= 0) & (row < widths[f]))] = widths[f]
    return np.vstack([out, np.zeros((1, out.shape[1]), dtype=out.dtype)])


def walk(tree: TreeArrays, numeric, widths, xe, slotted: bool = False, zero_row: bool = True):
    """Return the node where each row stops: a leaf, or the node whose value it lacks.

    *xe* is ``(n_features, n_rows)`` from ``encode_predict``: category codes or numbers, NaN
    for missing values; *slotted* when it was encoded with ``slots=widths`` (a categorical
    value is then its branch slot, and a row of zeros follows the features, unless
    *zero_row* is False: numbers only, such as ``X.T``). All rows move one level per step,
    one lookup in the child table each; a row that has stopped stays on its own slot, and
    every few levels those rows leave the arrays.
    """
    if not slotted:
        xe = slot_codes(xe, numeric, widths)
    t = tree.child_table(widths, numeric, slots=False)
    first, threshold, categorical = t["first"], t["threshold"], t["categorical"]
    width, n = xe.shape
    by_row = xe.T.flags.c_contiguous  # encode_predict's layout: a row's values lie together
    flat = xe.T.ravel() if by_row else np.ascontiguousarray(xe).ravel()
    codes_only = not t["any_numeric"] and xe.dtype.kind in "ui"
    numbers_only = not t["any_categorical"]
    has_nan = xe.dtype.kind == "f" and bool(np.isnan(flat).any())
    pairs = numbers_only and not has_nan and t["pairs"]
    feature = t["feature"]
    if not zero_row:
        if not pairs:  # a leaf reads the row of zeros: add it
            return walk(tree, numeric, widths, _with_zero_row(xe), slotted=True)
        feature = np.where(tree.feature >= 0, feature, 0)  # a leaf's +inf threshold keeps it
    # where a node's value of a row lies in *flat*: start[node] + at[row]
    start = feature if by_row else feature * n
    if pairs and flat.dtype == np.float32:  # x > t is x > (the largest float32 <= t)
        t32 = threshold.astype(np.float32)
        up = t32 > threshold
        t32[up] = np.nextafter(t32[up], np.float32(-np.inf))
        threshold = t32  # no cast of every value read to float64
    if not pairs:
        t = tree.child_table(widths, numeric)
    offset, child = t.get("offset"), t.get("child")
    node = np.zeros(n, dtype=np.intp)
    rows = np.arange(n, dtype=np.intp)
    at = rows * width if by_row else rows
    # each step writes into these (mode="clip": every index is in range, no check)
    bufs = np.zeros(n, dtype=np.intp), np.empty(n, dtype=np.intp)
    idx, value, go = np.empty(n, dtype=np.intp), np.empty(n, dtype=flat.dtype), np.empty(n, bool)
    thr = np.empty(n, dtype=threshold.dtype)
    which, m, step = 0, n, 0
    cur = bufs[0]
    while m:
        nxt = bufs[1 - which][:m]
        i = np.take(start, cur, out=idx[:m], mode="clip")
        i += at
        v = np.take(flat, i, out=value[:m], mode="clip")
        if pairs:  # the two children are consecutive; a leaf is its own "first"
            np.greater(v, np.take(threshold, cur, out=thr[:m], mode="clip"), out=go[:m])
            np.take(first, cur, out=nxt, mode="clip")
            nxt += go[:m]
        else:
            if codes_only:  # every value read is a slot; a leaf reads 0, its own
                branch = v
            elif numbers_only and not has_nan:
                branch = v > threshold[cur]
            else:
                branch = np.where(v == v, v > threshold[cur], 2)
                if not numbers_only:
                    branch = np.where(categorical[cur], v, branch).astype(np.intp)
            i = np.take(offset, cur, out=idx[:m], mode="clip")
            i += branch
            np.take(child, i, out=nxt, mode="clip")
        step += 1
        which = 1 - which
        if step % 4 == 0:
            done = nxt == cur
            if done.any():
                node[rows[done]] = cur[done]
                keep = np.flatnonzero(~done)
                rows = rows.take(keep)
                at = rows * width if by_row else rows
                m = len(rows)
                nxt = np.take(nxt, keep, out=bufs[1 - which][:m])
                which = 1 - which
        cur = nxt
    return node


def _with_zero_row(xe):
    """``xe`` (whose transpose is C-contiguous) with a row of zeros after it, laid out alike."""
    out = np.empty((xe.shape[1], xe.shape[0] + 1), dtype=xe.dtype)
    out[:, :-1] = xe.T
    out[:, -1] = 0
    return out.T


def spread(tree: TreeArrays, numeric, widths, xe, fractional: bool, visits=None):
    """Walk every row down; return ``(row, node, mass)`` of where its parts stop.

    With *fractional*, a row missing a node's value goes down every branch with the share of
    the training weight that went there (C4.5); otherwise it stops at that node. A value no
    branch covers stops at the node. *visits*, a list, receives ``(rows, nodes)`` of every
    node each row passes through.
    """
    total = tree.counts.sum(1)
    sibling = np.bincount(tree.parent[1:], total[1:], tree.n_nodes)
    share = total / np.where(tree.parent >= 0, sibling[np.maximum(tree.parent, 0)], 1.0)
    rows = np.arange(xe.shape[1])
    node = np.zeros(len(rows), dtype=np.int64)
    mass = np.ones(len(rows))
    done = []
    while len(rows):
        if visits is not None:
            visits.append((rows, node))
        inner = tree.feature[node] >= 0
        done.append((rows[~inner], node[~inner], mass[~inner]))
        rows, node, mass = rows[inner], node[inner], mass[inner]
        nxt, known = _step(tree, numeric, widths, xe, rows, node)
        lost = ~known if fractional else np.zeros(len(rows), dtype=bool)
        stop = (nxt < 0) & ~lost
        done.append((rows[stop], node[stop], mass[stop]))
        moved = nxt >= 0
        parts = [(rows[moved], nxt[moved], mass[moved])]
        if lost.any():
            n_kids = tree.n_children[node[lost]]
            src = np.repeat(np.flatnonzero(lost), n_kids)
            within = np.arange(len(src)) - np.repeat(np.cumsum(n_kids) - n_kids, n_kids)
            kid = tree.first_child[node[src]] + within
            parts.append((rows[src], kid, mass[src] * share[kid]))
        rows, node, mass = (np.concatenate(p) for p in zip(*parts, strict=True))
    return tuple(np.concatenate(p) for p in zip(*done, strict=True))
