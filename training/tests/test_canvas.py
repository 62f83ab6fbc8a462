"""The static-shape input path: canvases from the data, the collate, device normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.anchors import canvas_anchors
from training.canvas import (
    CanvasCollate,
    assign_canvases,
    canvas_multiple,
    channel_constants,
    choose_canvases,
    normalise,
    resized_sizes,
)
from training.loss import RetinaNetLoss, pad_targets
from training.model import build_model


def test_canvases_are_few_multiples_of_128_and_hold_every_image():
    rng = np.random.default_rng(0)
    # COCO-like: mostly 4:3 landscape, some portrait, some square, a few odd panoramas.
    wh = np.concatenate(
        [
            np.tile([[640, 480]], (60, 1)),
            np.tile([[480, 640]], (25, 1)),
            np.tile([[500, 500]], (10, 1)),
            rng.integers(200, 900, (20, 2)),
        ]
    )
    sizes = resized_sizes(wh, 800)
    assert sizes[0].tolist() == [600, 800] and sizes[60].tolist() == [800, 600]
    canvases = choose_canvases(sizes, 128, max_canvases=3)
    assert len(canvases) == 3
    assert all(h % 128 == 0 and w % 128 == 0 for h, w in canvases)
    bucket = assign_canvases(sizes, canvases)
    held = np.asarray(canvases)[bucket]
    assert (held >= sizes).all()
    # The common shapes get a canvas of their own, not the square.
    assert (640, 896) in canvases and (896, 640) in canvases
    assert choose_canvases(sizes, 128, 3) == canvases  # deterministic
    assert canvas_multiple(64) == 64 and canvas_multiple(100) == 128 and canvas_multiple(512) == 128


def test_collate_and_device_normalisation_give_the_transform_pixels_and_padded_targets():
    """Same images through torchvision's transform (float, resize no-op, normalise, pad to
    32) and through the canvas path (uint8, pad to the canvas, normalise on the device):
    identical pixels where both are, zero in the extra padding."""
    model = build_model("resnet10", 3, 96)
    gen = torch.Generator().manual_seed(0)
    images = [
        torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=gen)
        for h, w in [(96, 64), (80, 96), (96, 96)]
    ]
    targets = [
        {"boxes": torch.tensor([[1.0, 2.0, 30.0, 40.0]] * k), "labels": torch.arange(k) % 3}
        for k in (2, 0, 5)
    ]
    (canvas_batch, padded) = CanvasCollate([(128, 128)], max_boxes=7)(
        list(zip(images, targets, strict=True))
    )
    assert canvas_batch.pixels.dtype == torch.uint8 and canvas_batch.pixels.shape == (
        3,
        3,
        128,
        128,
    )
    ours = normalise(
        canvas_batch,
        *channel_constants(model.transform.image_mean, model.transform.image_std, "cpu"),
    )
    ref, _ = model.transform([img.float().div(255) for img in images])
    h, w = ref.tensors.shape[-2:]
    assert torch.equal(ours[..., :h, :w], ref.tensors)
    assert not ours[..., h:, :].any() and not ours[..., :, w:].any()
    expected = pad_targets(targets, 7)
    for a, b in zip(padded, expected, strict=True):
        assert torch.equal(a, b)
    assert padded.boxes.shape == (3, 7, 4)  # fixed M: static shapes whatever the batch


def test_canvas_loss_equals_the_transform_path_loss():
    """backbone -> head -> batched loss on a canvas batch gives the loss of the transform
    path when the canvas is the transform's own padded size."""
    torch.manual_seed(0)
    model = build_model("resnet10", 3, 64).eval()  # eval: BatchNorm statistics fixed
    gen = torch.Generator().manual_seed(1)
    images = [torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8, generator=gen)] * 2
    targets = [
        {"boxes": torch.tensor([[4.0, 6.0, 40.0, 50.0]]), "labels": torch.tensor([1])},
        {
            "boxes": torch.tensor([[10.0, 10.0, 30.0, 20.0], [0, 0, 63, 63]]),
            "labels": torch.tensor([0, 2]),
        },
    ]
    loss = RetinaNetLoss.from_model(model)
    canvas_batch, padded = CanvasCollate([(64, 64)], 4)(list(zip(images, targets, strict=True)))
    pixels = normalise(
        canvas_batch,
        *channel_constants(model.transform.image_mean, model.transform.image_std, "cpu"),
    )
    head = model.head(list(model.backbone(pixels).values()))
    ours = loss(
        head["cls_logits"], head["bbox_regression"], canvas_anchors(model, (64, 64)), padded
    )
    image_list, t = model.transform([img.float().div(255) for img in images], targets)
    head = model.head(list(model.backbone(image_list.tensors).values()))
    ref = loss(
        head["cls_logits"], head["bbox_regression"], canvas_anchors(model, (64, 64)), pad_targets(t)
    )
    for key in ("classification", "bbox_regression"):
        torch.testing.assert_close(ours[key], ref[key], rtol=0, atol=0)


def test_collate_refuses_float_images_and_images_larger_than_every_canvas():
    t = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    with pytest.raises(TypeError, match="uint8"):
        CanvasCollate([(64, 64)], 1)([(torch.zeros(3, 8, 8), t)])
    with pytest.raises(ValueError, match="fits no canvas"):
        CanvasCollate([(64, 64)], 1)([(torch.zeros(3, 65, 8, dtype=torch.uint8), t)])
