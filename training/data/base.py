"""What all datasets share: records, training transforms, bad-data reports, COCO ground truth."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from ..errors import UsageError
from .records import Record, RecordTable

__all__ = ["DataError", "DetectionDataset", "Issue", "Record", "RecordTable", "collate"]


@dataclass(frozen=True, order=True)
class Issue:
    """One bad-data finding: the file at fault, the line when there is one, and why."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


class DataError(UsageError):
    """Bad input data, found before training starts (a user mistake: exit status 2)."""

    @classmethod
    def from_issues(cls, issues: list[Issue], limit: int = 20) -> DataError:
        issues = sorted(set(issues))
        lines = [str(i) for i in issues[:limit]]
        if len(issues) > limit:
            lines.append(f"... and {len(issues) - limit} more")
        return cls(f"bad data ({len(issues)} problem(s)):\n  " + "\n  ".join(lines))


def box_outside(box, width: int, height: int, tolerance: float = 1.0) -> bool:
    x1, y1, x2, y2 = box
    return x1 < -tolerance or y1 < -tolerance or x2 > width + tolerance or y2 > height + tolerance


def check_image_file(path: str) -> str | None:
    """Why the file cannot serve as an image (None when it can). Reads the header only."""
    try:
        with Image.open(path) as im:
            im.size  # noqa: B018 - the header is parsed on open; size proves it
    except FileNotFoundError:
        return "missing file"
    except (UnidentifiedImageError, OSError) as exc:
        return f"unreadable image ({type(exc).__name__}: {exc})"
    return None


class DetectionDataset(Dataset):
    """Base class. Subclasses set `records`, `class_names`, `category_ids` and `issues`.

    Items are keyed by an index, or by `(epoch, index)` from the training sampler: the
    horizontal flip is a function of (seed, epoch, index), so an epoch's data is the same
    whatever the number of loader workers and after a mid-epoch resume.
    """

    name = "dataset"

    def __init__(self, image_size: int, train: bool, seed: int = 0):
        self.image_size = image_size
        self.train = train
        self.seed = seed
        self.records = RecordTable()  # subclasses set their own (training/data/records.py)
        self.class_names: list[str] = []
        self.category_ids: list[int] = []  # label -> category id for COCO evaluation
        self.issues: list[Issue] = []  # found while reading annotations (every rank alike)
        self.uint8 = False  # items as uint8 pixels (the canvas input path) rather than [0, 1]

    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def load_image(self, index: int) -> Image.Image:
        with Image.open(self.records[index].path) as im:
            return im.convert("RGB")

    def check_images(self, indices) -> list[Issue]:
        """Open the header of each listed image file; the caller spreads indices over ranks."""
        issues = []
        for i in indices:
            path = self.records[i].path
            if path is not None and (why := check_image_file(path)):
                issues.append(Issue(path, 0, why))
        return issues

    def flip(self, epoch: int, index: int) -> bool:
        return self.train and random.Random(f"{self.seed}:{epoch}:{index}").random() < 0.5

    def __getitem__(self, key):
        epoch, index = key if isinstance(key, tuple) else (0, key)
        rec = self.records[index]
        image, (scale_x, scale_y) = resize_to_tensor(self.load_image(index), self.image_size)
        boxes = torch.from_numpy(rec.boxes).float() * torch.tensor(
            [scale_x, scale_y, scale_x, scale_y]
        )
        if self.flip(epoch, index):
            image = image.flip(-1)
            w = image.shape[-1]
            boxes = torch.stack([w - boxes[:, 2], boxes[:, 1], w - boxes[:, 0], boxes[:, 3]], 1)
        target = {
            "boxes": boxes.reshape(-1, 4),
            "labels": torch.from_numpy(rec.labels).long(),
            "image_id": rec.image_id,
            "scale": (scale_x, scale_y),
        }
        return (image if self.uint8 else image.float().div_(255)), target

    def image_sizes(self) -> np.ndarray:
        """[N, 2] (width, height) of every original image; sizes the annotations lack (the
        CSV format's) are read from the image headers."""
        sizes = self.records.sizes()
        for i in np.flatnonzero(sizes[:, 0] == 0):
            with Image.open(self.records[int(i)].path) as im:
                sizes[i] = im.size
        return sizes

    def coco_gt(self) -> dict:
        """Ground truth in COCO format, original image coordinates, for pycocotools."""
        images, annotations = [], []
        for rec in self.records:
            images.append({"id": rec.image_id, "width": rec.width, "height": rec.height})
            for box, label in zip(rec.boxes.tolist(), rec.labels.tolist(), strict=True):
                w, h = box[2] - box[0], box[3] - box[1]
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": rec.image_id,
                        "category_id": self.category_ids[label],
                        "bbox": [box[0], box[1], w, h],
                        "area": w * h,
                        "iscrowd": 0,
                    }
                )
        categories = [
            {"id": c, "name": n} for c, n in zip(self.category_ids, self.class_names, strict=True)
        ]
        return {"images": images, "annotations": annotations, "categories": categories}


def resize_to_tensor(img: Image.Image, image_size: int) -> tuple[torch.Tensor, tuple]:
    """Resize keeping the aspect ratio (the longer side becomes image_size); return a uint8
    CHW tensor and the (x, y) scale factors applied."""
    scale = image_size / max(img.size)
    if scale != 1.0:
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        scales = (size[0] / img.width, size[1] / img.height)
        img = img.resize(size, Image.Resampling.BILINEAR)
    else:
        scales = (1.0, 1.0)
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1), scales


def collate(batch):
    """Images differ in size: keep them as lists (RetinaNet's transform pads the batch)."""
    return tuple(zip(*batch, strict=True))
