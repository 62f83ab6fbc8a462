"""A fitted tree as flat arrays, the child table that predict walks, and cutting subtrees off.

Node 0 is the root; the children of a node are consecutive and ordered by branch, and the
nodes of one depth follow those of the depth before (breadth-first order).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class TreeArrays:
    """A fitted tree as flat arrays, one entry per node; node 0 is the root."""

    feature: np.ndarray  # int64: split feature index, -1 at a leaf
    threshold: np.ndarray  # float64: numeric split value (left is <=), NaN otherwise
    counts: np.ndarray  # float64 (n_nodes, n_classes): training weight per class
    first_child: np.ndarray  # int64: id of the first child, -1 at a leaf
    n_children: np.ndarray  # int64
    branch: np.ndarray  # int64: category code (numeric: 0 <=, 1 >) from the parent; -1 at root
    parent: np.ndarray  # int64, -1 at the root
    depth: np.ndarray  # int64
    n_rows: np.ndarray  # float64: training rows at the node (fractions after missing values)
    # value subsets: node id -> each category code's branch there (-1: not at the node)
    groups: dict = field(default_factory=dict)
    _table: dict | None = field(default=None, repr=False)
    _majority: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_nodes(self) -> int:
        return len(self.feature)

    def child_table(self, widths: np.ndarray, numeric: np.ndarray, slots: bool = True) -> dict:
        """The table predict walks: node ``i``'s next node on branch ``b`` is
        ``child[offset[i] + b]``.

        A numeric node has slots 0 (``<=``), 1 (``>``) and 2 (missing); a categorical node one
        slot per category of its feature (*widths*) and one more for a missing or unseen value;
        a leaf one, which holds itself. Slots no child covers hold the node itself too, so a
        row that stops simply stays where it is. A leaf reads feature ``len(widths)`` (the row
        of zeros ``walk`` adds, so that it takes slot 0) with threshold +inf. A numeric node's
        two children are consecutive: its next node is also ``first + (x > t)``, which needs
        no slots (``slots=False`` leaves them out until asked for). Built once per tree:
        predict then needs one lookup per row and level instead of a search.
        """
        if self._table is None:
            inner = self.feature >= 0
            f = np.where(inner, self.feature, 0)
            cat = inner & ~numeric[f]
            number = inner & ~cat
            self._table = {
                "feature": np.where(inner, self.feature, len(widths)).astype(np.intp),
                "threshold": np.where(number, self.threshold, np.inf),
                "categorical": cat,
                "first": np.where(inner, self.first_child, np.arange(self.n_nodes)).astype(np.intp),
                "pairs": bool(np.all(self.n_children[number] == 2)),
                "any_categorical": bool(cat.any()),
                "any_numeric": bool(number.any()),
            }
        t = self._table
        if slots and "child" not in t:
            inner, cat = self.feature >= 0, t["categorical"]
            width = np.where(cat, widths[t["feature"] % len(widths)], np.where(inner, 2, 0))
            width = width.astype(np.int64)
            n_slots = np.where(inner, width + 1, 1)
            offset = (np.cumsum(n_slots) - n_slots).astype(np.intp)
            child = np.repeat(np.arange(self.n_nodes, dtype=np.intp), n_slots)
            ids = np.arange(1, self.n_nodes)
            if self.groups:
                ids = ids[~np.isin(self.parent[ids], np.fromiter(self.groups, dtype=np.int64))]
            child[offset[self.parent[ids]] + self.branch[ids]] = ids
            for i, mapping in self.groups.items():  # every value of a subset to its branch
                codes = np.flatnonzero(mapping >= 0)
                child[offset[i] + codes] = self.first_child[i] + mapping[codes]
            t.update(offset=offset, width=width, child=child)
        return t

    def majority(self) -> np.ndarray:
        """Each node's most probable class: ``argmax`` of its class shares (the first on a tie)."""
        if self._majority is None:
            shares = self.counts / self.counts.sum(axis=1, keepdims=True)
            if shares.shape[1] > 16:
                self._majority = np.argmax(shares, axis=1)
            else:  # column by column: much faster than argmax along a short last axis
                best, arg = shares[:, 0].copy(), np.zeros(len(shares), dtype=np.intp)
                for c in range(1, shares.shape[1]):
                    better = shares[:, c] > best
                    arg[better] = c
                    best[better] = shares[better, c]
                self._majority = arg
        return self._majority

    def leaves(self) -> np.ndarray:
        return np.flatnonzero(self.feature < 0)

    def keep(self, leaf: np.ndarray) -> TreeArrays:
        """A copy where the nodes flagged in *leaf* become leaves and their descendants go.

        The order of the nodes that stay is kept, so the copy is in breadth-first order too.
        """
        leaf = leaf | (self.feature < 0)
        removed = np.zeros(self.n_nodes, dtype=bool)
        for i in range(1, self.n_nodes):  # parents come before their children
            p = self.parent[i]
            removed[i] = removed[p] or leaf[p]
        stay = ~removed
        new_id = np.cumsum(stay) - 1
        feature = np.where(leaf, -1, self.feature)[stay]
        first = np.where(leaf | (self.first_child < 0), -1, self.first_child)[stay]
        first = np.where(first >= 0, new_id[np.maximum(first, 0)], -1)
        n_children = np.where(leaf, 0, self.n_children)[stay]
        threshold = np.where(leaf, np.nan, self.threshold)[stay]
        parent = self.parent[stay]
        parent = np.where(parent >= 0, new_id[np.maximum(parent, 0)], -1)
        return TreeArrays(
            feature=feature,
            threshold=threshold,
            counts=self.counts[stay],
            first_child=first,
            n_children=n_children,
            branch=self.branch[stay],
            parent=parent,
            depth=self.depth[stay],
            n_rows=self.n_rows[stay],
            groups={int(new_id[i]): m for i, m in self.groups.items() if stay[i] and not leaf[i]},
        )
