"""The training step's forward + loss on a canvas batch, eager or under torch.compile.

With --input canvas every batch has one of a few fixed shapes (canvas, images per rank,
boxes padded to the data's maximum), so `torch.compile(dynamic=False)` compiles once per
canvas and never again: normalisation, backbone, head (through the DDP module) and the
batched loss with its fp32 anchors. One compilation is a few graphs, not one: dynamo breaks
at DDP's `_pre_forward` (its Logger call) and, on purpose, at DDP's gradient buckets
(DDPOptimizer, so that all-reduce overlaps backward); `torch._dynamo.explain` on the CPU
model shows 4 graphs, 3 breaks, all of these. The recompile limit is raised to the number
of canvases plus one, so a new shape past it is a bug that torch reports, not a silent
slowdown.

    step = ForwardLoss(model, criterion, mean, std, channels_last, amp_dtype, compile=True)
    losses = step(images, targets, anchors)  # {"classification", "bbox_regression"}
"""

from __future__ import annotations

import contextlib
import logging

import torch

from .canvas import CanvasImages, channel_constants, normalise
from .loss import PaddedTargets

log = logging.getLogger("training")


def _forward_loss(model, criterion, images, targets, anchors, mean, std, channels_last, dtype):
    pixels = normalise(images, mean, std, channels_last)
    autocast = (
        torch.autocast(pixels.device.type, dtype=dtype) if dtype else contextlib.nullcontext()
    )
    with autocast:
        cls_logits, bbox_regression = model(pixels)
    return criterion(cls_logits, bbox_regression, anchors, targets)


class ForwardLoss:
    """Callable (images, targets, anchors) -> losses; `model` is the DDP module whose
    forward takes a normalised [N, 3, H, W] batch and returns (cls_logits, bbox_regression)."""

    def __init__(
        self,
        model,
        criterion,
        mean,
        std,
        channels_last: bool = False,
        amp_dtype: torch.dtype | None = None,
        compile: bool = False,
        canvases: int = 4,
        backend: str = "inductor",
    ):
        self.model, self.criterion = model, criterion
        self.mean, self.std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
        self.constants = None  # (mean, std) on the device, made at the first batch
        self.channels_last, self.amp_dtype = channels_last, amp_dtype
        self.fn = _forward_loss
        if compile:
            limit = canvases + 1
            torch._dynamo.config.cache_size_limit = max(
                torch._dynamo.config.cache_size_limit, limit
            )
            self.fn = torch.compile(_forward_loss, dynamic=False, backend=backend)
            log.info(
                "--compile: forward + loss compiled (%s) once per canvas, at its first batch",
                backend,
            )

    def __call__(self, images: CanvasImages, targets: PaddedTargets, anchors) -> dict:
        if self.constants is None or self.constants[0].device != images.pixels.device:
            self.constants = channel_constants(self.mean, self.std, images.pixels.device)
        return self.fn(
            self.model,
            self.criterion,
            images,
            targets,
            anchors,
            *self.constants,
            self.channels_last,
            self.amp_dtype,
        )
