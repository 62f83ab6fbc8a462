"""The built-in demo dataset: solid shapes on textured backgrounds, with exact boxes.

Everything is a function of (seed, split, index): the layout (classes, boxes, colours) comes
from one random stream and the pixels from another, so ground truth for evaluation is known
without drawing a single image. Object sizes scale with the image size (9% to 47% of it).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .base import DetectionDataset, Record, RecordTable

CLASS_NAMES = ["circle", "square", "triangle"]
_SPLITS = {"train": 0, "val": 1}


def shape_mask(cls: int, w: int, h: int) -> np.ndarray:
    """Boolean mask of shape `cls` filling a w x h box, sampled at pixel centres."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    if cls == 0:  # circle (an ellipse when w != h)
        return ((x - w / 2) / (w / 2)) ** 2 + ((y - h / 2) / (h / 2)) ** 2 <= 1.0
    if cls == 1:  # square (a rectangle when w != h)
        return np.ones((h, w), bool)
    # triangle: apex at the top centre, base along the bottom
    return np.abs(x - w / 2) <= (w / 2) * (y / h)


class SyntheticDataset(DetectionDataset):
    name = "synthetic"

    def __init__(self, size: int, image_size: int, split: str, seed: int = 0, train=None):
        super().__init__(image_size, train=split == "train" if train is None else train, seed=seed)
        self.split_code = _SPLITS[split]
        self.class_names = list(CLASS_NAMES)
        self.category_ids = list(range(1, len(CLASS_NAMES) + 1))
        self._noise_field = None
        self._layouts = [self._layout(i) for i in range(size)]
        records = []
        for i, objects in enumerate(self._layouts):
            boxes = np.array([o[1] for o in objects], np.float32).reshape(-1, 4)
            labels = np.array([o[0] for o in objects], np.int64)
            records.append(Record(i + 1, None, image_size, image_size, boxes, labels))
        self.records = RecordTable(records)

    def _noise(self) -> np.ndarray:
        if self._noise_field is None:  # made on first use, in each loader worker
            rng = np.random.default_rng([self.seed, self.split_code, 2**31])
            size = 2 * self.image_size
            self._noise_field = rng.standard_normal((size, size, 3), dtype=np.float32)
        return self._noise_field

    def _rng(self, index: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.split_code, index, stream])

    def _layout(self, index: int):
        """Objects of one image: (class, exact box x1y1x2y2, colour, origin, w, h); no overlaps."""
        rng, s = self._rng(index, 0), self.image_size
        objects, taken = [], []
        for _ in range(int(rng.integers(1, 6))):
            for _try in range(20):
                cls = int(rng.integers(len(CLASS_NAMES)))
                size = rng.uniform(0.09, 0.47) * s
                aspect = rng.uniform(0.8, 1.25)
                w = max(4, int(size * aspect**0.5))
                h = max(4, int(size / aspect**0.5))
                if w >= s or h >= s:
                    continue
                x0, y0 = int(rng.integers(0, s - w + 1)), int(rng.integers(0, s - h + 1))
                if any(
                    x0 < bx2 + 2 and bx1 < x0 + w + 2 and y0 < by2 + 2 and by1 < y0 + h + 2
                    for bx1, by1, bx2, by2 in taken
                ):
                    continue
                mask = shape_mask(cls, w, h)
                ys, xs = np.nonzero(mask)
                box = (x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1)
                colour = rng.uniform(0, 255, 3)
                objects.append((cls, tuple(float(v) for v in box), colour, x0, y0, w, h))
                taken.append((x0, y0, x0 + w, y0 + h))
                break
        return objects

    def load_image(self, index: int) -> Image.Image:
        rng, s = self._rng(index, 1), self.image_size
        f32 = np.float32
        xx = np.arange(s, dtype=f32)[None, :] / s
        yy = np.arange(s, dtype=f32)[:, None] / s
        # Background: a two-colour gradient, stripes of random frequency and angle, and noise
        # (float32 and broadcasting throughout: generation must keep up with a GPU at 512 px).
        c0, c1 = rng.uniform(0, 255, 3).astype(f32), rng.uniform(0, 255, 3).astype(f32)
        angle = rng.uniform(0, np.pi)
        t = (f32(np.cos(angle)) * xx + f32(np.sin(angle)) * yy + 1) / 2
        freq, phase, angle2 = rng.uniform(2, 12), rng.uniform(0, 2 * np.pi), rng.uniform(0, np.pi)
        arg = f32(2 * np.pi * freq) * (f32(np.cos(angle2)) * xx + f32(np.sin(angle2)) * yy)
        shade = f32(rng.uniform(0, 30)) * np.sin(arg + f32(phase))
        # Noise: a window of one shared noise field (drawing fresh noise per image costs more
        # than everything else here).
        oy, ox = rng.integers(0, s, 2)
        img = self._noise()[oy : oy + s, ox : ox + s] * f32(rng.uniform(5, 25))
        img += shade[..., None]
        img += c0 + (c1 - c0) * t[..., None]
        for cls, _box, colour, x0, y0, w, h in self._layouts[index]:
            region = img[y0 : y0 + h, x0 : x0 + w]
            # Keep each shape visible: push its colour away from the background under it.
            bg = region.mean((0, 1))
            if np.abs(colour - bg).sum() < 150:
                colour = np.where(bg > 127, colour * 0.3, 255 - (255 - colour) * 0.3)
            region[shape_mask(cls, w, h)] = colour
        return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
