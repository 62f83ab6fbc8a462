"""Batched post-processing against torchvision's RetinaNet.postprocess_detections."""

from __future__ import annotations

import pytest
import torch

from training.anchors import canvas_anchors, fpn_grid_sizes
from training.model import build_model
from training.opcount import OpRecorder
from training.postprocess import BatchedPostprocess, image_runs

# The CPU shape (resnet10, P3-P5) and the standard RetinaNet shape (P3-P7) of training/model.py.
CONFIGS = [("resnet10", 128, 3), ("resnet18", 256, 7)]


def level_counts(model, canvas):
    per_location = model.anchor_generator.num_anchors_per_location()
    grids = fpn_grid_sizes(canvas, len(per_location))
    return [h * w * k for (h, w), k in zip(grids, per_location, strict=True)]


def torchvision_detections(model, logits, regression, anchors, image_sizes, counts):
    """As RetinaNet.forward does in eval mode: split per level, then postprocess_detections."""
    split = {
        "cls_logits": list(logits.split(counts, dim=1)),
        "bbox_regression": list(regression.split(counts, dim=1)),
    }
    per_image = [list(anchors.split(counts))] * logits.shape[0]
    return model.postprocess_detections(split, per_image, image_sizes)


def assert_same_detections(ours, ref):
    assert len(ours) == len(ref)
    for o, r in zip(ours, ref, strict=True):
        assert o["boxes"].shape == r["boxes"].shape, (o["boxes"].shape, r["boxes"].shape)
        # Same detections; the order of equal scores may differ, so compare sorted.
        ko = _order(o)
        kr = _order(r)
        torch.testing.assert_close(o["scores"][ko], r["scores"][kr], rtol=0, atol=0)
        torch.testing.assert_close(o["boxes"][ko], r["boxes"][kr], rtol=0, atol=0)
        assert torch.equal(o["labels"][ko], r["labels"][kr])


def _order(d):
    """Sort by score, then label, then box, so that ties have one order."""
    keys = torch.cat([d["boxes"], d["labels"][:, None].float(), d["scores"][:, None]], 1)
    order = torch.arange(len(keys))
    for col in range(keys.shape[1]):  # least significant first: a stable multi-key sort
        order = order[torch.sort(keys[order, col], stable=True, descending=col == 5).indices]
    return order


@pytest.mark.parametrize("backbone,size,classes", CONFIGS)
@pytest.mark.parametrize("seed", [0, 1])
def test_batched_postprocess_gives_torchvision_detections(backbone, size, classes, seed):
    torch.manual_seed(seed)
    model = build_model(backbone, classes, size).eval()
    if seed == 1:
        model.detections_per_img = 20  # the cut after NMS binds
    canvas = (size, size)
    anchors = canvas_anchors(model, canvas)
    counts = level_counts(model, canvas)
    n, a = 4, anchors.shape[0]
    gen = torch.Generator().manual_seed(seed)
    # Many scores above the 0.05 threshold (top-k binds on the larger levels), some large
    # deltas (exp clamp), and images smaller than the canvas (clipping to each one's size).
    logits = torch.randn(n, a, classes, generator=gen) * 1.5 - 3.5
    regression = torch.randn(n, a, 4, generator=gen) * 0.6
    regression[:, ::97, 2:] = 6.0
    image_sizes = [(size, size), (size - 30, size), (size, size - 50), (size // 2, size // 3)]

    ref = torchvision_detections(model, logits, regression, anchors, image_sizes, counts)
    ours = BatchedPostprocess.from_model(model)(logits, regression, anchors, image_sizes, counts)
    assert sum(len(r["scores"]) for r in ref) >= 10 * n  # not a trivial comparison
    if seed == 1:
        assert [len(r["scores"]) for r in ref] == [20] * n
    assert_same_detections(ours, ref)


def test_no_detection_above_the_threshold_gives_empty_results():
    model = build_model("resnet10", 3, 128).eval()
    anchors = canvas_anchors(model, (128, 128))
    counts = level_counts(model, (128, 128))
    logits = torch.full((2, anchors.shape[0], 3), -10.0)
    logits[1, 5, 2] = 3.0  # one detection, in the second image
    regression = torch.zeros(2, anchors.shape[0], 4)
    ours = BatchedPostprocess.from_model(model)(
        logits, regression, anchors, [(128, 128)] * 2, counts
    )
    ref = torchvision_detections(model, logits, regression, anchors, [(128, 128)] * 2, counts)
    assert [len(d["scores"]) for d in ours] == [0, 1]
    assert_same_detections(ours, ref)


def test_nms_in_runs_of_images_gives_the_same_detections_with_fewer_ops():
    """The GPU path cuts the batch into runs of whole images (forced here on the CPU with a
    small run size); both give torchvision's detections, with far fewer dispatched ops."""
    from dataclasses import replace

    model = build_model("resnet10", 3, 128).eval()
    anchors = canvas_anchors(model, (128, 128))
    counts = level_counts(model, (128, 128))
    gen = torch.Generator().manual_seed(2)
    n = 8
    logits = torch.randn(n, anchors.shape[0], 3, generator=gen) - 3
    regression = torch.randn(n, anchors.shape[0], 4, generator=gen) * 0.3
    sizes = [(128, 128)] * n
    post = BatchedPostprocess.from_model(model)
    with OpRecorder() as ours:
        whole = post(logits, regression, anchors, sizes, counts)
    with OpRecorder() as ref:
        expected = torchvision_detections(model, logits, regression, anchors, sizes, counts)
    kept_per_image = [int((torch.sigmoid(x) > 0.05).sum()) for x in logits]
    limit = 2 * max(kept_per_image)  # about two images a run
    runs = replace(post, nms_chunk_boxes=limit)(logits, regression, anchors, sizes, counts)
    assert_same_detections(whole, expected)
    assert_same_detections(runs, expected)
    print(f"dispatched ops, {n} images: batched {ours.total}, torchvision {ref.total}")
    assert ours.total * 2 < ref.total, (ours.total, ref.total)


def test_image_runs_cut_at_image_boundaries():
    assert image_runs([10, 20, 45, 50, 90], limit=25) == [(0, 20), (20, 45), (45, 50), (50, 90)]
    assert image_runs([5, 5, 9], limit=100) == [(0, 9)]
    assert image_runs([30], limit=10) == [(0, 30)]


def test_evaluation_detect_gives_the_model_own_detections_in_original_coordinates():
    """engine.predict_shard's path (transform, backbone, head, batched post-processing,
    boxes mapped back to each input's size) against `model(images)` in eval mode, on images
    of different sizes (one resized up by the transform, so the mapping back matters)."""
    from training.postprocess import detect

    torch.manual_seed(3)
    model = build_model("resnet10", 3, 128).eval()
    torch.nn.init.constant_(model.head.classification_head.cls_logits.bias, -1.0)
    gen = torch.Generator().manual_seed(3)
    images = [torch.rand(3, h, w, generator=gen) for h, w in [(128, 96), (100, 128), (48, 64)]]
    cache: dict = {}
    ours = detect(model, images, cache)
    with torch.inference_mode():
        ref = model(images)
    assert sum(len(r["scores"]) for r in ref) >= 30  # not a trivial comparison
    assert ref[2]["boxes"][:, 2].max() <= 64 and ref[2]["boxes"][:, 3].max() <= 48
    for o, r in zip(ours, ref, strict=True):
        assert o["boxes"].shape == r["boxes"].shape
        ko, kr = _order(o), _order(r)
        torch.testing.assert_close(o["scores"][ko], r["scores"][kr], rtol=0, atol=0)
        # torchvision decodes with its own anchors in fp32 too: equal to rounding
        torch.testing.assert_close(o["boxes"][ko], r["boxes"][kr], rtol=0, atol=1e-4)
        assert torch.equal(o["labels"][ko], r["labels"][kr])
    assert len(cache) == 1  # one canvas for the batch, anchors computed once
