"""The batched loss against torchvision's RetinaNet.compute_loss: same matches, same losses and
gradients, no host synchronisation; fp32 anchors under autocast."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import boxes as box_ops

from training.anchors import canvas_anchors, fpn_grid_sizes
from training.loss import (
    FocalLossSum,
    PaddedTargets,
    RetinaNetLoss,
    match_from_iou,
    pad_targets,
    sigmoid_focal_loss,
)
from training.model import build_model
from training.opcount import OpRecorder

# (backbone, canvas, classes): the CPU shape (resnet10, P3-P5, anchors 16-64) and the standard
# RetinaNet shape that resnet18/34/50 share (P3-P7, anchors 32-512).
CONFIGS = [("resnet10", 128, 3), ("resnet18", 256, 7)]


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {b: build_model(b, c, s) for b, s, c in CONFIGS}


def random_targets(gen: torch.Generator, n: int, size: int, classes: int, max_boxes: int = 100):
    """Boxes of every kind: 0-100 per image, empty images, tiny (under a pixel to 3 px), huge,
    exact duplicates, boxes equal to anchor-like squares on the stride grid (IoU ties)."""
    targets = []
    for i in range(n):
        k = 0 if i % 4 == 1 else int(torch.randint(0, max_boxes + 1, (), generator=gen))
        xy = torch.rand(k, 2, generator=gen) * size
        scale = torch.rand(k, 1, generator=gen)
        wh = torch.where(
            scale < 0.2,
            0.3 + 3 * torch.rand(k, 2, generator=gen),  # tiny
            8 + torch.rand(k, 2, generator=gen) * size * scale,
        )
        boxes = torch.cat([xy, xy + wh], dim=1)
        if k >= 6:
            boxes[3] = boxes[0]  # exact duplicates
            boxes[5] = boxes[2]
            boxes[4] = torch.tensor([8.0, 8.0, 40.0, 40.0])  # on the anchor grid
        labels = torch.randint(0, classes, (k,), generator=gen)
        targets.append({"boxes": boxes, "labels": labels})
    return targets


def head_outputs(gen: torch.Generator, n: int, a: int, classes: int):
    # Around the prior (p = 0.01) with a wide spread: confident, uncertain and wrong anchors.
    logits = (torch.randn(n, a, classes, generator=gen) * 3 - 4.6).requires_grad_()
    regression = (torch.randn(n, a, 4, generator=gen) * 0.5).requires_grad_()
    return logits, regression


def torchvision_matches(model, anchors, targets):
    out = []
    for t in targets:
        if t["boxes"].numel() == 0:
            out.append(torch.full((anchors.shape[0],), -1, dtype=torch.int64))
        else:
            out.append(model.proposal_matcher(box_ops.box_iou(t["boxes"], anchors)))
    return torch.stack(out)


def assert_grad_close(ours, ref):
    """Gradients agree elementwise within 1e-5 relative wherever they are at least 1e-3 of
    the largest element, everywhere within 1e-6 of the largest element, and in norm within
    1e-6 (measured: 1.2e-6, 2.1e-7 and 7e-8 for the classification, box gradients identical).

    Elementwise relative agreement is not a meaningful bar for the tiniest elements: torch's
    BCE, (1 - t) x - log_sigmoid(x), cancels for confident negatives (5e-5 relative at
    p = 0.01, all digits lost by p = 1e-6) where this loss computes softplus accurately.
    """
    scale = ref.abs().max().item()
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6 * scale)
    significant = ref.abs() >= 1e-3 * scale
    assert ((ours - ref).abs() <= 1e-5 * ref.abs())[significant].all()
    assert ((ours - ref).norm() / ref.norm()).item() < 1e-6


@pytest.mark.parametrize("backbone,size,classes", CONFIGS)
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_are_bit_identical_and_losses_and_gradients_agree_with_torchvision(
    models, backbone, size, classes, seed
):
    model = models[backbone]
    gen = torch.Generator().manual_seed(seed)
    anchors = canvas_anchors(model, (size, size))
    n = 6
    targets = random_targets(gen, n, size, classes)
    logits, regression = head_outputs(gen, n, anchors.shape[0], classes)
    criterion = RetinaNetLoss.from_model(model)
    padded = pad_targets(targets)

    assert torch.equal(
        criterion.match(anchors, padded), torchvision_matches(model, anchors, targets)
    )

    ref = model.compute_loss(
        targets, {"cls_logits": logits, "bbox_regression": regression}, [anchors] * n
    )
    ref_grads = torch.autograd.grad(sum(ref.values()), (logits, regression))
    ours = criterion(logits, regression, anchors, padded)
    grads = torch.autograd.grad(sum(ours.values()), (logits, regression))
    for key in ("classification", "bbox_regression"):
        assert ours[key].dtype == torch.float32 and ours[key].shape == ()
        torch.testing.assert_close(ours[key], ref[key], rtol=1e-5, atol=0)
    for g, r in zip(grads, ref_grads, strict=True):
        assert_grad_close(g, r)


@pytest.mark.parametrize("loss_type", ["smooth_l1", "giou"])
def test_other_box_losses_of_torchvision_agree(models, loss_type):
    model = models["resnet10"]
    model.head.regression_head._loss_type = loss_type
    try:
        gen = torch.Generator().manual_seed(3)
        anchors = canvas_anchors(model, (128, 128))
        targets = random_targets(gen, 4, 128, 3, max_boxes=30)
        logits, regression = head_outputs(gen, 4, anchors.shape[0], 3)
        criterion = RetinaNetLoss.from_model(model)
        assert criterion.box_loss == loss_type
        ref = model.compute_loss(
            targets, {"cls_logits": logits, "bbox_regression": regression}, [anchors] * 4
        )["bbox_regression"]
        ours = criterion(logits, regression, anchors, pad_targets(targets))["bbox_regression"]
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=0)
        (ref_grad,) = torch.autograd.grad(ref, regression)
        (grad,) = torch.autograd.grad(ours, regression)
        assert_grad_close(grad, ref_grad)
    finally:
        model.head.regression_head._loss_type = "l1"


def test_per_image_anchors_and_fixed_padding_give_the_same_result(models):
    """Anchors [N, A, 4] (here shifted per image) and padding to a fixed M (static shapes)."""
    model = models["resnet10"]
    gen = torch.Generator().manual_seed(4)
    base = canvas_anchors(model, (128, 128))
    per_image = torch.stack([base + 2.0 * i for i in range(3)])
    targets = random_targets(gen, 3, 128, 3, max_boxes=20)
    logits, regression = head_outputs(gen, 3, base.shape[0], 3)
    criterion = RetinaNetLoss.from_model(model)
    ref = model.compute_loss(
        targets, {"cls_logits": logits, "bbox_regression": regression}, list(per_image)
    )
    for padded in (pad_targets(targets), pad_targets(targets, max_boxes=64)):
        ours = criterion(logits, regression, per_image, padded)
        for key in ref:
            torch.testing.assert_close(ours[key], ref[key], rtol=1e-5, atol=0)


def test_crafted_ties_follow_torchvision_matcher():
    """Ties everywhere: IoU values on a coarse grid, so that anchors tie between gts (first
    gt wins), gts tie between anchors (all get a low-quality match), and an anchor that is
    one gt's best but has a higher IoU with another gt gets that other gt, as torchvision's
    `matches[pred] = all_matches[pred]` does."""
    gen = torch.Generator().manual_seed(5)
    n, m, a, pad = 300, 5, 24, 2
    levels = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.8, 1.0])
    iou = levels[torch.randint(0, len(levels), (n, m + pad, a), generator=gen)]
    # Halve some gts' rows (exactly: ties survive) so that their best IoU is a low-quality one.
    iou = iou * torch.where(torch.rand(n, m + pad, 1, generator=gen) < 0.5, 0.5, 1.0)
    counts = torch.randint(1, m + 1, (n,), generator=gen)
    valid = torch.arange(m + pad) < counts[:, None]
    iou = torch.where(valid[:, :, None], iou, 0.0)  # padded rows hold IoU 0, after the valid
    matcher = det_utils.Matcher(0.5, 0.4, allow_low_quality_matches=True)
    ours = match_from_iou(iou, valid)
    ref = torch.stack([matcher(iou[i, : counts[i]].clone()) for i in range(n)])
    assert torch.equal(ours, ref)
    # The crafted cases did occur: a low-quality match to another gt than the one whose best
    # it is, and one gt's best IoU shared by several anchors.
    best_gt_per_anchor = iou.argmax(dim=1)
    low_quality = (ref >= 0) & (iou.amax(dim=1) < 0.5)
    assert low_quality.any()
    is_best = (iou == torch.where(valid, iou.amax(dim=2), math.nan)[:, :, None]) & valid[:, :, None]
    assert ((is_best.sum(dim=2) > 1) & valid).any()
    owner_differs = is_best & (best_gt_per_anchor[:, None, :] != torch.arange(m + pad)[:, None])
    assert owner_differs.any()
    plain = det_utils.Matcher(0.5, 0.4, allow_low_quality_matches=False)
    ref_plain = torch.stack([plain(iou[i, : counts[i]].clone()) for i in range(n)])
    assert torch.equal(match_from_iou(iou, valid, allow_low_quality_matches=False), ref_plain)


def test_an_all_empty_batch_is_all_background_with_zero_box_loss(models):
    model = models["resnet10"]
    anchors = canvas_anchors(model, (128, 128))
    empty = {"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.int64)}
    targets = [empty, empty]
    gen = torch.Generator().manual_seed(6)
    logits, regression = head_outputs(gen, 2, anchors.shape[0], 3)
    padded = pad_targets(targets)
    assert padded.boxes.shape == (2, 1, 4) and not padded.valid.any()
    criterion = RetinaNetLoss.from_model(model)
    assert (criterion.match(anchors, padded) == -1).all()
    ours = criterion(logits, regression, anchors, padded)
    ref = model.compute_loss(
        targets, {"cls_logits": logits, "bbox_regression": regression}, [anchors] * 2
    )
    torch.testing.assert_close(ours["classification"], ref["classification"], rtol=1e-5, atol=0)
    assert ours["bbox_regression"].item() == 0.0 == ref["bbox_regression"].item()


def test_padded_rows_may_hold_garbage():
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 15.0, 15.0]])
    boxes = torch.tensor([[[0.0, 0.0, 10.0, 9.0], [math.nan, math.inf, -1.0, 0.0]]])
    clean = PaddedTargets(boxes[:, :1], torch.tensor([[1]]), torch.tensor([[True]]))
    dirty = PaddedTargets(boxes, torch.tensor([[1, 99]]), torch.tensor([[True, False]]))
    logits, regression = torch.zeros(1, 2, 2), torch.zeros(1, 2, 4)
    criterion = RetinaNetLoss()
    a = criterion(logits, regression, anchors, clean)
    b = criterion(logits, regression, anchors, dirty)
    for key in a:
        assert torch.isfinite(b[key]) and torch.equal(a[key], b[key])


def test_inputs_under_bf16_autocast_are_computed_in_fp32(models):
    model = models["resnet10"]
    anchors = canvas_anchors(model, (128, 128))
    gen = torch.Generator().manual_seed(7)
    targets = pad_targets(random_targets(gen, 2, 128, 3, max_boxes=10))
    logits, regression = head_outputs(gen, 2, anchors.shape[0], 3)
    criterion = RetinaNetLoss.from_model(model)
    lo, re = logits.detach().bfloat16(), regression.detach().bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = criterion(lo, re, anchors, targets)
    outside = criterion(lo.float(), re.float(), anchors, targets)
    for key in inside:
        assert inside[key].dtype == torch.float32
        assert torch.equal(inside[key], outside[key])


def test_focal_gradient_matches_autograd_of_torchvision_expression_for_other_gammas():
    gen = torch.Generator().manual_seed(8)
    x = (torch.randn(2, 50, 4, generator=gen) * 3).requires_grad_()
    target_class = torch.randint(-1, 4, (2, 50), generator=gen)
    keep = (torch.rand(2, 50, generator=gen) < 0.8) | (target_class >= 0)  # fg is never ignored
    t = (target_class[..., None] == torch.arange(4)).float()
    for alpha, gamma in ((0.25, 2.0), (0.5, 1.5), (-1, 3.0), (0.25, 1.0)):
        ref = (sigmoid_focal_loss(x, t, alpha, gamma) * keep[..., None]).sum(dim=(1, 2))
        ours = FocalLossSum.apply(x, target_class, keep, alpha, gamma)
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=0)
        weights = torch.tensor([0.3, 1.7])
        (g_ref,) = torch.autograd.grad((ref * weights).sum(), x)
        (g,) = torch.autograd.grad((ours * weights).sum(), x)
        assert_grad_close(g, g_ref)


def test_cpu_runs_of_images_give_the_result_of_the_whole_batch_path(models, monkeypatch):
    """On a GPU the loss works on the whole batch at once; on the CPU in runs of images. Both
    paths agree (here both on the CPU), and the whole-batch path's op count does not grow
    with the batch."""
    import training.loss as loss_module

    model = models["resnet18"]
    gen = torch.Generator().manual_seed(11)
    anchors = canvas_anchors(model, (256, 256))
    targets = pad_targets(random_targets(gen, 5, 256, 7, max_boxes=40))
    logits, regression = head_outputs(gen, 5, anchors.shape[0], 7)
    criterion = RetinaNetLoss.from_model(model)
    results = {}
    for name, elements in (("runs", 1 << 12), ("whole", 1 << 40)):
        monkeypatch.setattr(loss_module, "CPU_CHUNK_ELEMENTS", elements)
        runs = loss_module.image_chunks(5, 12276 * 7, logits.device)
        assert (len(runs) == 1) == (name == "whole")
        with OpRecorder() as rec:
            losses = criterion(logits, regression, anchors, targets)
            grads = torch.autograd.grad(sum(losses.values()), (logits, regression))
        results[name] = (losses, grads, rec.total)
    (l_runs, g_runs, _), (l_whole, g_whole, ops_whole) = results["runs"], results["whole"]
    for key in l_runs:
        torch.testing.assert_close(l_runs[key], l_whole[key], rtol=1e-6, atol=0)
    for a, b in zip(g_runs, g_whole, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=0)
    small = PaddedTargets(*(t[:2] for t in targets))
    logits, regression = (x[:2].detach().requires_grad_() for x in (logits, regression))
    with OpRecorder() as rec:  # still the whole-batch path (monkeypatched above)
        losses = criterion(logits, regression, anchors, small)
        torch.autograd.grad(sum(losses.values()), (logits, regression))
    assert rec.total == ops_whole, "the op count depends on the batch size"


# --- host synchronisation ---------------------------------------------------------------


def test_no_host_synchronisation_in_forward_and_backward(models, record_property):
    model = models["resnet18"]
    gen = torch.Generator().manual_seed(9)
    anchors = canvas_anchors(model, (256, 256))
    n = 16  # the batch of the target: at most a fifth of torchvision's ops
    targets = random_targets(gen, n, 256, 7, max_boxes=20)
    logits, regression = head_outputs(gen, n, anchors.shape[0], 7)
    criterion = RetinaNetLoss.from_model(model)
    padded = pad_targets(targets)

    with OpRecorder() as ours:
        losses = criterion(logits, regression, anchors, padded)
        sum(losses.values()).backward()
    with OpRecorder() as ref:
        losses = model.compute_loss(
            targets, {"cls_logits": logits, "bbox_regression": regression}, [anchors] * n
        )
        sum(losses.values()).backward()
    with OpRecorder() as padding:
        pad_targets(targets)

    counts = {
        "ours_ops": ours.total,
        "torchvision_ops": ref.total,
        "torchvision_syncs": sum(ref.syncs.values()),
    }
    for k, v in counts.items():
        record_property(k, v)
    print(f"dispatched ops, forward + backward, {n} images: {counts}")
    assert not ours.syncs, f"host syncs in the batched loss: {dict(ours.syncs)}"
    assert not padding.syncs, f"host syncs in pad_targets: {dict(padding.syncs)}"
    # The recorder does see torchvision's syncs, and backward ops are recorded too.
    assert ref.syncs["aten.nonzero"] > 0 and ref.syncs["aten.index"] > 0
    assert any(name.endswith("_backward") for name in ref.ops)
    assert counts["ours_ops"] * 5 <= counts["torchvision_ops"]


# --- anchors ------------------------------------------------------------------------------


@pytest.mark.parametrize("backbone,size,classes", CONFIGS)
def test_canvas_anchors_equal_torchvision_anchor_generator_in_fp32(models, backbone, size, classes):
    model = models[backbone]
    for canvas in ((size, size), (size, size + 128), (200, 328)):
        with torch.no_grad():
            features = list(model.backbone(torch.zeros(1, 3, *canvas)).values())
        assert [tuple(f.shape[-2:]) for f in features] == fpn_grid_sizes(canvas, len(features))
        images = ImageList(torch.zeros(1, 3, *canvas), [canvas])
        ref = model.anchor_generator(images, features)[0]
        ours = canvas_anchors(model, canvas)
        assert ours.dtype == torch.float32 and torch.equal(ours, ref)


def test_anchors_under_bf16_autocast_torchvision_rounds_them_ours_stay_fp32():
    """Issue 10's first defect, reproduced on the CPU: torchvision's AnchorGenerator builds
    anchors in the feature maps' dtype, so under bf16 autocast they are off by pixels (and its
    cell anchors are left in bf16 for later calls). The model's own generator and
    canvas_anchors stay fp32."""
    model = build_model("resnet10", 3, 512)
    generator = model.anchor_generator
    torchvision_generator = AnchorGenerator(generator.sizes, generator.aspect_ratios)
    canvas = (512, 512)
    images = ImageList(torch.zeros(1, 3, *canvas), [canvas])
    exact = canvas_anchors(model, canvas)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        features = list(model.backbone(torch.zeros(1, 3, *canvas)).values())
        assert features[0].dtype == torch.bfloat16
        theirs = torchvision_generator(images, features)[0]
        models_own = generator(images, features)[0]
        ours = canvas_anchors(model, canvas)
    assert theirs.dtype == torch.bfloat16
    error = (theirs.float() - exact).abs()
    assert error.max().item() >= 1.0  # whole pixels
    assert ours.dtype == torch.float32 and torch.equal(ours, exact)
    assert models_own.dtype == torch.float32 and torch.equal(models_own, exact)
    # torchvision's cell anchors were converted in place; the model's were not.
    assert torchvision_generator.cell_anchors[0].dtype == torch.bfloat16
    assert generator.cell_anchors[0].dtype == torch.float32
    assert torch.equal(canvas_anchors(model, canvas), exact)


@pytest.mark.slow
def test_loss_compiles_as_one_graph_with_static_shapes(models):
    """torch.compile(fullgraph=True) traces forward and backward without a graph break: no
    data-dependent shape or host read anywhere (aot_eager: the trace, without codegen)."""
    model = models["resnet10"]
    anchors = canvas_anchors(model, (128, 128))
    gen = torch.Generator().manual_seed(10)
    targets = pad_targets(random_targets(gen, 2, 128, 3, max_boxes=10), max_boxes=16)
    logits, regression = head_outputs(gen, 2, anchors.shape[0], 3)
    criterion = RetinaNetLoss.from_model(model)

    def total(*args):
        losses = criterion(*args)
        return losses["classification"] + losses["bbox_regression"]

    compiled = torch.compile(total, fullgraph=True, backend="aot_eager")
    out = compiled(logits, regression, anchors, targets)
    (grad,) = torch.autograd.grad(out, logits)
    ref = total(logits, regression, anchors, targets)
    (ref_grad,) = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=0)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-6, atol=1e-12)
