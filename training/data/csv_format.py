"""The CSV format of yhenon/pytorch-retinanet.

Annotations, one box a line: `path,x1,y1,x2,y2,class_name`; an image without objects is
`path,,,,,`. Classes: `class_name,id`. Coordinates may be floats. Relative image paths are
taken relative to the folder of the CSV file. Labels follow the ids in ascending order.
"""

from __future__ import annotations

import csv
import os

import numpy as np
from PIL import Image

from .base import DetectionDataset, Issue, Record, RecordTable, box_outside, check_image_file


def read_classes(path: str) -> tuple[list[str], list[int], list[Issue]]:
    """Class names and ids from a `class_name,id` file, sorted by id."""
    if not os.path.isfile(path):
        return [], [], [Issue(path, 0, "missing file (classes file)")]
    issues, rows, seen_names, seen_ids = [], [], set(), set()
    with open(path, newline="") as f:
        for line, row in enumerate(csv.reader(f), 1):
            if not row or not "".join(row).strip():
                continue
            if len(row) != 2:
                issues.append(Issue(path, line, f"expected 2 fields class_name,id, got {len(row)}"))
                continue
            name, raw_id = row[0].strip(), row[1].strip()
            try:
                class_id = int(raw_id)
            except ValueError:
                issues.append(Issue(path, line, f"class id {raw_id!r} is not an integer"))
                continue
            if not name:
                issues.append(Issue(path, line, "empty class name"))
            elif name in seen_names:
                issues.append(Issue(path, line, f"duplicate class name {name!r}"))
            elif class_id in seen_ids:
                issues.append(Issue(path, line, f"duplicate class id {class_id}"))
            else:
                seen_names.add(name)
                seen_ids.add(class_id)
                rows.append((class_id, name))
    if not rows and not issues:
        issues.append(Issue(path, 0, "no classes listed"))
    rows.sort()
    return [n for _, n in rows], [i for i, _ in rows], issues


class CsvDataset(DetectionDataset):
    name = "csv"

    def __init__(
        self, csv_file: str, classes_file: str, image_size: int, train: bool, seed: int = 0
    ):
        super().__init__(image_size, train, seed)
        self.class_names, ids, self.issues = read_classes(classes_file)
        # COCO evaluation wants positive category ids: label + 1, whatever the file's ids.
        self.category_ids = list(range(1, len(ids) + 1))
        self.class_ids = ids
        if not os.path.isfile(csv_file):
            self.issues.append(Issue(csv_file, 0, "missing file (annotations CSV)"))
            return
        label_of = {n: i for i, n in enumerate(self.class_names)}
        base = os.path.dirname(os.path.abspath(csv_file))
        images: dict[str, list] = {}  # path -> [(box, label, line)], in order of appearance
        with open(csv_file, newline="") as f:
            for line, row in enumerate(csv.reader(f), 1):
                if not row or not "".join(row).strip():
                    continue
                found = self._parse_row(csv_file, line, row, label_of)
                if isinstance(found, Issue):
                    self.issues.append(found)
                    continue
                rel, box, label = found
                path = rel if os.path.isabs(rel) else os.path.join(base, rel)
                objects = images.setdefault(path, [])
                if box is not None:
                    objects.append((box, label, line))
        self._rows = images
        records = []
        for image_id, (path, objects) in enumerate(images.items(), 1):
            records.append(
                Record(
                    image_id,
                    path,
                    0,  # filled by check_images(), which reads the header
                    0,
                    np.array([o[0] for o in objects], np.float32).reshape(-1, 4),
                    np.array([o[1] for o in objects], np.int64),
                )
            )
        self.records = RecordTable(records)
        self.csv_file = csv_file

    @staticmethod
    def _parse_row(csv_file, line, row, label_of):
        if len(row) != 6:
            return Issue(
                csv_file, line, f"expected 6 fields path,x1,y1,x2,y2,class_name, got {len(row)}"
            )
        path, *coords, name = (v.strip() for v in row)
        if not path:
            return Issue(csv_file, line, "empty image path")
        if not any(coords) and not name:
            return path, None, None  # an image without objects
        if not all(coords) or not name:
            return Issue(csv_file, line, "some of x1,y1,x2,y2,class_name are empty")
        try:
            x1, y1, x2, y2 = (float(v) for v in coords)
        except ValueError:
            return Issue(csv_file, line, f"coordinates {','.join(coords)} are not numbers")
        if x2 <= x1 or y2 <= y1:
            return Issue(csv_file, line, f"x2 must exceed x1 and y2 exceed y1, got {coords}")
        if name not in label_of:
            known = ", ".join(sorted(label_of)) or "none"
            return Issue(csv_file, line, f"unknown class {name!r} (classes file lists: {known})")
        return path, (x1, y1, x2, y2), label_of[name]

    def check_images(self, indices) -> list[Issue]:
        """Read each image's header: it must open, and every box must lie inside it."""
        issues = []
        for i in indices:
            rec = self.records[i]
            why = check_image_file(rec.path)
            if why:
                issues.append(Issue(rec.path, 0, why))
                continue
            with Image.open(rec.path) as im:
                rec.width, rec.height = im.size
            self.records.set_size(i, rec.width, rec.height)
            for box, _label, line in self._rows[rec.path]:
                if box_outside(box, rec.width, rec.height):
                    issues.append(
                        Issue(
                            self.csv_file,
                            line,
                            f"box {box} lies outside the image {rec.path} "
                            f"({rec.width}x{rec.height})",
                        )
                    )
        return issues

    def coco_gt(self) -> dict:
        # Image sizes come from the headers; other ranks may have checked some of them.
        for i, rec in enumerate(self.records):
            if rec.width == 0:
                with Image.open(rec.path) as im:
                    self.records.set_size(i, *im.size)
        return super().coco_gt()
