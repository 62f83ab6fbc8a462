"""COCO-format detection data read with pycocotools.

Category ids (which have gaps in COCO: 1..90 for 80 classes) map to contiguous labels in
sorted id order and back for evaluation. Crowd regions are not trained on (they stay in the
ground truth, where COCOeval ignores detections on them); images without boxes are kept;
boxes with no area after clipping to the image are dropped and counted.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os

import numpy as np
from pycocotools.coco import COCO

from .base import DetectionDataset, Issue, Record, RecordTable, box_outside

log = logging.getLogger("training")


class CocoDataset(DetectionDataset):
    name = "coco"

    def __init__(self, ann_file: str, image_dir: str, image_size: int, train: bool, seed: int = 0):
        super().__init__(image_size, train, seed)
        self.ann_file = ann_file
        self.counts = {"crowd": 0, "degenerate": 0, "empty_images": 0}
        self._gt_bytes: np.ndarray | None = None
        if not os.path.isfile(ann_file):
            self.issues.append(Issue(ann_file, 0, "missing file (annotation file)"))
            return
        if not os.path.isdir(image_dir):
            self.issues.append(Issue(image_dir, 0, "missing directory (images)"))
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
                coco = COCO(ann_file)
        except Exception as exc:  # a JSON or structure error in the file
            self.issues.append(Issue(ann_file, 0, f"cannot read COCO annotations ({exc})"))
            return
        # The JSON's Python objects would be copied into every worker page by page as their
        # reference counts change (pytorch#13246): keep them as one numpy byte array instead.
        self._gt_bytes = np.frombuffer(json.dumps(coco.dataset).encode(), dtype=np.uint8)
        cats = sorted(coco.cats)
        self.category_ids = cats
        self.class_names = [coco.cats[c]["name"] for c in cats]
        label_of = {c: i for i, c in enumerate(cats)}
        records = []

        for image_id in sorted(coco.imgs):
            info = coco.imgs[image_id]
            width, height = int(info["width"]), int(info["height"])
            boxes, labels = [], []
            for ann in coco.imgToAnns.get(image_id, []):
                where = f"annotation id {ann.get('id')} (image {image_id})"
                if ann["category_id"] not in label_of:
                    self.issues.append(
                        Issue(ann_file, 0, f"{where}: unknown class id {ann['category_id']}")
                    )
                    continue
                if ann.get("iscrowd", 0):
                    self.counts["crowd"] += 1
                    continue
                x, y, w, h = ann["bbox"]
                box = (x, y, x + w, y + h)
                if box_outside(box, width, height):
                    self.issues.append(
                        Issue(
                            ann_file,
                            0,
                            f"{where}: box {[round(v, 2) for v in ann['bbox']]} (x,y,w,h) lies "
                            f"outside the image ({width}x{height})",
                        )
                    )
                    continue
                x1, y1 = min(max(box[0], 0), width), min(max(box[1], 0), height)
                x2, y2 = min(max(box[2], 0), width), min(max(box[3], 0), height)
                if x2 <= x1 or y2 <= y1:
                    self.counts["degenerate"] += 1
                    continue
                boxes.append((x1, y1, x2, y2))
                labels.append(label_of[ann["category_id"]])
            if not boxes:
                self.counts["empty_images"] += 1
            records.append(
                Record(
                    image_id,
                    os.path.join(image_dir, info["file_name"]),
                    width,
                    height,
                    np.array(boxes, np.float32).reshape(-1, 4),
                    np.array(labels, np.int64),
                )
            )
        # Arrays, not one Python object per image, in every loader worker (records.py).
        self.records = RecordTable(records)

    def describe(self) -> str:
        c = self.counts
        return (
            f"{self.ann_file}: {len(self)} images, {self.num_classes} classes; "
            f"{c['crowd']} crowd boxes not trained on, {c['degenerate']} degenerate boxes "
            f"dropped, {c['empty_images']} images without boxes kept"
        )

    def coco_gt(self) -> dict | None:
        """The annotation file's dict (for COCOeval), parsed again from the stored bytes."""
        if self._gt_bytes is None:
            return None
        return json.loads(self._gt_bytes.tobytes())
