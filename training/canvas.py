"""Static-shape training input: uint8 images padded to a few fixed canvases.

torchvision's GeneralizedRCNNTransform resizes, normalises and pads every batch to its own
largest image (rounded to 32), in Python, image by image: every batch has another shape, so
neither cudnn.benchmark nor torch.compile can settle, and float32 pixels travel from the
workers (4x the bytes of uint8). Here:

- the workers decode and resize (the longer side to --image-size, as today) and send uint8;
- each image belongs to one of a few canvases, aspect-ratio buckets chosen from the data with
  sides that are multiples of 128 (`choose_canvases`); the sampler (training/batching.py)
  fills each step's batch from one bucket, and the collate pads it to that canvas;
- normalisation runs on the device (`normalise`), the padding is zero after normalisation
  as in torchvision's transform, and the targets arrive padded to a fixed number of boxes
  (static shapes for torch.compile: one graph per canvas).

    canvases = choose_canvases(resized_sizes(dataset.records.sizes(), 512), multiple=128)
    collate = CanvasCollate(canvases, max_boxes=dataset_max_boxes)
    mean, std = channel_constants(image_mean, image_std, device)  # once
    pixels = normalise(images, mean, std)  # each step: on the device, [N, 3, H, W] float

Images smaller than 128 px (the CPU tests and demo) use a multiple of their own size rounded
up to 32 (torchvision's `size_divisible`) instead, so that a 64 px image is not padded to 128.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from .loss import PaddedTargets, pad_targets

CANVAS_MULTIPLE = 128
MAX_CANVASES = 4


def canvas_multiple(image_size: int) -> int:
    """128, or for images under 128 px their size rounded up to 32."""
    return CANVAS_MULTIPLE if image_size >= CANVAS_MULTIPLE else -(-image_size // 32) * 32


def resized_sizes(sizes_wh: np.ndarray, image_size: int) -> np.ndarray:
    """[N, 2] (height, width) after `data.base.resize_to_tensor` (longer side = image_size),
    computed the same way, from the original (width, height)."""
    sizes_wh = np.asarray(sizes_wh, np.float64).reshape(-1, 2)
    out = np.empty((len(sizes_wh), 2), np.int64)
    for i, (w, h) in enumerate(sizes_wh.tolist()):
        scale = image_size / max(w, h)
        if scale != 1.0:
            w, h = max(1, round(w * scale)), max(1, round(h * scale))
        out[i] = (int(h), int(w))
    return out


def _round_up(x: np.ndarray, multiple: int) -> np.ndarray:
    return -(-x // multiple) * multiple


def choose_canvases(
    sizes_hw: np.ndarray, multiple: int, max_canvases: int = MAX_CANVASES
) -> list[tuple[int, int]]:
    """At most `max_canvases` (height, width) canvases, sides multiples of `multiple`, that
    cover every image: each image's own size rounded up, then the bucket with the fewest
    images merged into the smallest larger canvas that covers it, until few enough remain.

    >>> choose_canvases([(512, 384), (512, 384), (384, 512), (512, 512)], 128, 2)
    [(512, 384), (512, 512)]
    """
    sizes = np.asarray(sizes_hw, np.int64).reshape(-1, 2)
    if len(sizes) == 0:
        raise ValueError("no images to choose canvases for")
    own = _round_up(sizes, multiple)
    keys, counts = np.unique(own, axis=0, return_counts=True)
    buckets = {tuple(int(v) for v in k): int(c) for k, c in zip(keys, counts, strict=True)}
    while len(buckets) > max_canvases:
        # The fewest images first; ties: the smaller canvas (fixed order, same on every rank).
        small = min(buckets, key=lambda c: (buckets[c], c[0] * c[1], c))
        cover = [c for c in buckets if c != small and c[0] >= small[0] and c[1] >= small[1]]
        if cover:
            into = min(cover, key=lambda c: (c[0] * c[1], c))
        else:  # nothing covers it: a new canvas that covers it and its nearest neighbour
            other = min(
                (c for c in buckets if c != small),
                key=lambda c: (max(c[0], small[0]) * max(c[1], small[1]), c),
            )
            into = (max(other[0], small[0]), max(other[1], small[1]))
            buckets[into] = buckets.get(into, 0) + buckets.pop(other)
        buckets[into] += buckets.pop(small)
    return sorted(buckets, key=lambda c: (c[0] * c[1], c))


def assign_canvases(sizes_hw: np.ndarray, canvases: list[tuple[int, int]]) -> np.ndarray:
    """Index of the smallest canvas that holds each image ([N] int64); canvases are sorted
    by area, as `choose_canvases` returns them."""
    sizes = np.asarray(sizes_hw, np.int64).reshape(-1, 2)
    c = np.asarray(canvases, np.int64).reshape(-1, 2)
    fits = (sizes[:, None, 0] <= c[None, :, 0]) & (sizes[:, None, 1] <= c[None, :, 1])
    if not fits.any(1).all():
        bad = int(np.flatnonzero(~fits.any(1))[0])
        raise ValueError(f"image {bad} of size {tuple(sizes[bad])} fits no canvas {canvases}")
    return fits.argmax(1)


class CanvasImages(NamedTuple):
    """A batch on one canvas: uint8 pixels [N, 3, H, W] (zero outside each image) and the
    (height, width) of each image inside it ([N, 2] int64)."""

    pixels: Tensor
    sizes: Tensor

    def to(self, device, non_blocking: bool = True) -> CanvasImages:
        return CanvasImages(*(t.to(device, non_blocking=non_blocking) for t in self))


def targets_to(targets: PaddedTargets, device) -> PaddedTargets:
    return PaddedTargets(*(t.to(device, non_blocking=True) for t in targets))


class CanvasCollate:
    """DataLoader collate: uint8 images of one bucket -> (CanvasImages, PaddedTargets).

    The canvas is the smallest of `canvases` that holds every image of the batch (the
    sampler makes that the batch's bucket). Targets are padded to `max_boxes` (the most
    boxes of any image in the data), so every step of a canvas has the same shapes.
    """

    def __init__(self, canvases: list[tuple[int, int]], max_boxes: int):
        self.canvases = sorted(canvases, key=lambda c: (c[0] * c[1], c))  # smallest first
        self.max_boxes = max(1, int(max_boxes))

    def __call__(self, batch) -> tuple[CanvasImages, PaddedTargets]:
        images, targets = zip(*batch, strict=True)
        if images[0].dtype != torch.uint8:
            raise TypeError("CanvasCollate takes uint8 images (the dataset's `uint8 = True`)")
        sizes = torch.tensor([tuple(img.shape[-2:]) for img in images], dtype=torch.int64)
        h, w = int(sizes[:, 0].max()), int(sizes[:, 1].max())
        canvas = next((c for c in self.canvases if c[0] >= h and c[1] >= w), None)
        if canvas is None:
            raise ValueError(f"a batch of {h}x{w} images fits no canvas of {self.canvases}")
        pixels = torch.zeros((len(images), 3, *canvas), dtype=torch.uint8)
        for i, img in enumerate(images):
            pixels[i, :, : img.shape[-2], : img.shape[-1]] = img
        padded = pad_targets(list(targets), self.max_boxes)
        return CanvasImages(pixels, sizes), padded


def channel_constants(mean, std, device) -> tuple[Tensor, Tensor]:
    """mean and std as [3, 1, 1] float32 tensors on the device, for `normalise`. Make them
    once per run: on a GPU, each tensor built from Python numbers reaches the device by a copy
    from pageable host memory, for which "the driver may synchronize with the stream" (CUDA's
    API synchronization behavior, asynchronous memcpy): one host wait per step."""
    return tuple(
        torch.as_tensor(v, dtype=torch.float32).to(device).reshape(-1, 1, 1) for v in (mean, std)
    )


def normalise(
    images: CanvasImages, mean: Tensor, std: Tensor, channels_last: bool = False
) -> Tensor:
    """[N, 3, H, W] float32: (pixels / 255 - mean) / std inside each image and 0 in the
    padding, the values of GeneralizedRCNNTransform's normalise-then-pad. On the device,
    no host synchronisation; `mean` and `std` are `channel_constants`' tensors."""
    pixels, sizes = images
    device = pixels.device
    x = (pixels.float() / 255 - mean) / std
    rows = torch.arange(pixels.shape[-2], device=device)
    cols = torch.arange(pixels.shape[-1], device=device)
    inside = (rows[None, :, None] < sizes[:, 0, None, None]) & (
        cols[None, None, :] < sizes[:, 1, None, None]
    )
    x = x * inside.unsqueeze(1)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x
