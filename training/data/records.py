"""Per-image records held as a few flat numpy arrays, not one Python object per image.

A loader worker reads a dataset's records from memory it shares with its parent after the
fork. Python objects there (a list of per-image dicts or dataclasses, their strings and small
arrays) are copied page by page as soon as a worker touches them, because reading an object
writes its reference count: with COCO's 118k training images every worker of every rank ends
up with a private copy (pytorch/pytorch#13246). A handful of numpy arrays have a handful of
reference counts, so their pages stay shared.

    table = RecordTable([Record(1, "a.jpg", 640, 480, boxes, labels), ...])
    rec = table[0]  # a Record built on access, with its own copy of the boxes and labels
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Record:
    """One image: its id, file (None for generated images), size and boxes in pixels (x1y1x2y2)."""

    image_id: int
    path: str | None
    width: int
    height: int
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))


class RecordTable(Sequence):
    """The records of a dataset in eight numpy arrays (whatever the number of images).

    Paths are one UTF-8 byte array with offsets; boxes and labels are concatenated over the
    images with offsets. Items are `Record`s made on access; change a size with `set_size`.
    """

    def __init__(self, records: Sequence[Record] = ()):
        n = len(records)
        self.image_ids = np.array([r.image_id for r in records], np.int64).reshape(n)
        self.widths = np.array([r.width for r in records], np.int64).reshape(n)
        self.heights = np.array([r.height for r in records], np.int64).reshape(n)
        self.has_path = np.array([r.path is not None for r in records], bool).reshape(n)
        encoded = [(r.path or "").encode() for r in records]
        self.path_bytes = np.frombuffer(b"".join(encoded), np.uint8).copy()
        self.path_ends = np.cumsum([len(p) for p in encoded], dtype=np.int64).reshape(n)
        self.boxes = np.concatenate(
            [np.asarray(r.boxes, np.float32).reshape(-1, 4) for r in records]
            or [np.zeros((0, 4), np.float32)]
        )
        self.labels = np.concatenate(
            [np.asarray(r.labels, np.int64).reshape(-1) for r in records]
            or [np.zeros((0,), np.int64)]
        )
        self.box_ends = np.cumsum([len(r.labels) for r in records], dtype=np.int64).reshape(n)

    def __len__(self) -> int:
        return len(self.image_ids)

    def _index(self, index: int) -> int:
        if not -len(self) <= index < len(self):
            raise IndexError(f"record {index} of {len(self)}")
        return index % len(self)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        i = self._index(int(index))
        path = None
        if self.has_path[i]:
            start = self.path_ends[i - 1] if i else 0
            path = self.path_bytes[start : self.path_ends[i]].tobytes().decode()
        start = self.box_ends[i - 1] if i else 0
        end = self.box_ends[i]
        return Record(
            int(self.image_ids[i]),
            path,
            int(self.widths[i]),
            int(self.heights[i]),
            self.boxes[start:end].copy(),  # copies: a Record never writes into the table
            self.labels[start:end].copy(),
        )

    def __iter__(self) -> Iterator[Record]:
        return (self[i] for i in range(len(self)))

    def set_size(self, index: int, width: int, height: int) -> None:
        """Record an image's size read later from its header (the CSV format has none)."""
        i = self._index(index)
        self.widths[i], self.heights[i] = width, height

    def sizes(self) -> np.ndarray:
        """[N, 2] (width, height) of every image, for aspect-ratio grouping."""
        return np.stack([self.widths, self.heights], 1)

    def max_boxes(self) -> int:
        """The most boxes of any one image (0 for none)."""
        return int(np.diff(self.box_ends, prepend=0).max(initial=0))
