"""RetinaNet's training loss for the whole batch at once, with no host synchronisation.

The numbers are torchvision's `RetinaNet.compute_loss` (anchor matching by IoU with the 0.5/0.4
thresholds and low-quality matches, sigmoid focal loss over the anchors that are not ignored,
box regression over the foreground anchors, each image normalised by its number of foreground
anchors, then the mean over images); the shape is not. torchvision loops over the images in
Python and reads counts back to the host (`nonzero`, `.item()`, boolean indexing). Here every
tensor has a shape known before the data is seen: targets are padded to [N, M], matching is a
dense [N, M, A] IoU reduced with `max`/`amax`, and the losses are masked sums. So the loss
compiles with static shapes and never waits for the device.

How engine code calls it (anchors from `training.anchors`, fp32, once per canvas size):

    from training.anchors import canvas_anchors
    from training.loss import RetinaNetLoss, pad_targets

    criterion = RetinaNetLoss.from_model(model_without_ddp)  # thresholds, box loss, coder
    anchors = canvas_anchors(model_without_ddp, (height, width), device)  # [A, 4] fp32
    targets = pad_targets(target_dicts, max_boxes=128)  # in the loader's collate, on the CPU
    targets = PaddedTargets(*(t.to(device, non_blocking=True) for t in targets))
    head_outputs = model.head(list(model.backbone(images).values()))  # autocast is fine
    losses = criterion(
        head_outputs["cls_logits"], head_outputs["bbox_regression"], anchors, targets
    )
    loss = losses["classification"] + losses["bbox_regression"]  # 0-dim fp32 tensors

(Under DDP, backbone and head run through the DDP-wrapped module's forward, e.g. a small
module returning the two head outputs, so that DDP's hooks see the call.)

Inputs: `cls_logits` [N, A, C] and `bbox_regression` [N, A, 4] in any float dtype (they are
upcast; the loss runs in fp32 with autocast off); `anchors` [A, 4] shared by the batch or
[N, A, 4] per image, in the padded canvas' pixels, as torchvision's AnchorGenerator makes them;
`targets` a `PaddedTargets` (boxes [N, M, 4] x1y1x2y2 in the same pixels, labels [N, M] int64,
valid [N, M] bool) with each image's valid rows first, as `pad_targets` makes them; padded rows
may hold anything. A fixed M (`max_boxes`) keeps shapes static: under torch.compile every new
M is a recompile. Labels of valid rows must lie in [0, C): torchvision fails on an
out-of-range label, this loss cannot check without a host sync and gives such a box no class
target. Boxes must have positive width and height (torchvision's forward asserts it). Images
with no valid box have every anchor as background. Non-finite head outputs: torchvision never
reads the logits of ignored anchors; here a NaN or infinite logit anywhere makes the
classification loss NaN (masks are multiplies: a `where` costs five multiplies on a CPU). Box
deltas of background anchors never reach the box loss (a NaN there does reach its gradient).

Numbers (training/tests/test_loss.py): matches bit-identical to torchvision's; losses and
gradients within 1e-5 relative (gradients relative to their largest element: torchvision's
cross-entropy loses digits for confident negatives, this one does not).

Memory: matching holds a few [N, M, A] fp32 tensors (16 images x 100 boxes x 180k anchors, the
R50-FPN at 800 x 1216, is about 1.2 GB each), which a GPU affords; pad M to what the data needs.
On the CPU the elementwise work runs in a few runs of images (`image_chunks`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

BELOW_LOW_THRESHOLD = -1  # torchvision's Matcher: background
BETWEEN_THRESHOLDS = -2  # ignored by the classification loss
BOX_LOSSES = ("l1", "smooth_l1", "giou")


class PaddedTargets(NamedTuple):
    boxes: Tensor  # [N, M, 4] float, x1y1x2y2
    labels: Tensor  # [N, M] int64
    valid: Tensor  # [N, M] bool: which rows are real boxes


def pad_targets(
    targets: list[dict[str, Tensor]],
    max_boxes: int | None = None,
    device: torch.device | str | None = None,
) -> PaddedTargets:
    """Pad torchvision target dicts ({"boxes": [k, 4], "labels": [k]}) to [N, M].

    M is `max_boxes` (a fixed M keeps shapes static for torch.compile) or else the largest k
    in the batch, and at least 1. Real boxes come first in each row, in their original order,
    so matched indices are the same as torchvision's. Only shapes are read. Best done where
    the targets are, on the CPU in a loader's collate, then moved with non_blocking=True: with
    another `device`, each image's boxes are copied there one by one.
    """
    counts = [int(t["boxes"].shape[0]) for t in targets]
    most = max(counts, default=0)
    if max_boxes is None:
        max_boxes = most
    elif most > max_boxes:
        image = counts.index(most)
        raise ValueError(
            f"image {image} of the batch has {most} boxes, more than max_boxes={max_boxes}"
        )
    m = max(1, max_boxes)
    if device is None:
        device = targets[0]["boxes"].device if targets else "cpu"
    n = len(targets)
    boxes = torch.zeros((n, m, 4), dtype=torch.float32, device=device)
    labels = torch.zeros((n, m), dtype=torch.int64, device=device)
    for i, (t, k) in enumerate(zip(targets, counts, strict=True)):
        if k:
            boxes[i, :k] = t["boxes"]
            labels[i, :k] = t["labels"]
    counts_t = torch.tensor(counts, device="cpu").to(device, non_blocking=True)
    valid = torch.arange(m, device=device) < counts_t.unsqueeze(1)
    return PaddedTargets(boxes, labels, valid)


def box_iou(boxes: Tensor, anchors: Tensor) -> Tensor:
    """IoU [N, M, A] of boxes [N, M, 4] with anchors [N or 1, A, 4].

    The same operations in the same order as torchvision.ops.box_iou, so every value is
    bit-identical to it (IEEE arithmetic is elementwise exact). The anchors' coordinates are
    made contiguous planes first: ops on stride-4 inner dims are not vectorised on the CPU.
    """
    gx1, gy1, gx2, gy2 = boxes.unsqueeze(2).unbind(-1)  # [N, M, 1] each
    ax1, ay1, ax2, ay2 = anchors.movedim(-1, 0).contiguous().unsqueeze(2)  # [N|1, 1, A] each
    area_g = (gx2 - gx1) * (gy2 - gy1)
    area_a = (ax2 - ax1) * (ay2 - ay1)
    # Three [N, M, A] buffers, reused in place: a fresh large CPU tensor costs more in page
    # faults than the arithmetic that fills it.
    scratch = torch.maximum(gx1, ax1)
    inter = torch.minimum(gx2, ax2).sub_(scratch).clamp_(min=0)
    height = torch.minimum(gy2, ay2).sub_(torch.maximum(gy1, ay1, out=scratch)).clamp_(min=0)
    inter.mul_(height)
    union = torch.add(area_g, area_a, out=scratch).sub_(inter)
    return inter.div_(union)


def match_from_iou(
    iou: Tensor,
    valid: Tensor,
    high_threshold: float = 0.5,
    low_threshold: float = 0.4,
    allow_low_quality_matches: bool = True,
) -> Tensor:
    """torchvision's Matcher for a batch: [N, A] int64 of gt indices, -1 (background) or -2
    (between the thresholds). `iou` [N, M, A]; rows where `valid` [N, M] is False must hold
    IoU 0 (as `box_iou` gives a zero box) and come after the valid ones: they then never win.

    As torchvision: each anchor takes the first gt of highest IoU; below `low_threshold` it is
    background, in [low, high) ignored. With low-quality matches, every anchor whose IoU with
    some gt equals that gt's best IoU (ties included, even below the thresholds) gets back its
    own first-best gt, which need not be that gt (torchvision assigns `all_matches`).
    """
    best_iou, best_gt = iou.max(dim=1)  # first maximum, as torchvision's max(dim=0)
    matches = torch.where(
        best_iou < low_threshold,
        BELOW_LOW_THRESHOLD,
        torch.where(best_iou < high_threshold, BETWEEN_THRESHOLDS, best_gt),
    )
    if allow_low_quality_matches:
        best_per_gt = iou.amax(dim=2, keepdim=True)  # [N, M, 1]
        best_per_gt = torch.where(valid.unsqueeze(2), best_per_gt, math.nan)  # equals nothing
        is_best = (iou == best_per_gt).any(dim=1)
        matches = torch.where(is_best, best_gt, matches)
    return matches


def encode_boxes(gt: Tensor, anchors: Tensor, weights: tuple[float, ...]) -> Tensor:
    """torchvision's BoxCoder.encode_single on coordinate planes: gt [4, ...] and anchors
    [4, ...] (broadcastable) -> codes [4, ...], value for value (same operations, same order)."""
    wx, wy, ww, wh = weights
    ex_w = anchors[2] - anchors[0]
    ex_h = anchors[3] - anchors[1]
    ex_x = anchors[0] + 0.5 * ex_w
    ex_y = anchors[1] + 0.5 * ex_h
    gt_w = gt[2] - gt[0]
    gt_h = gt[3] - gt[1]
    codes = gt.new_empty(torch.broadcast_shapes(gt.shape, anchors.shape))
    # gt_x = gt[0] + 0.5 * gt_w (0.5 * w is exact), then (gt_x - ex_x) / ex_w, into its plane
    # w * x is skipped where w == 1: x * 1.0 == x exactly.
    torch.add(gt[0], gt_w, alpha=0.5, out=codes[0]).sub_(ex_x)
    torch.add(gt[1], gt_h, alpha=0.5, out=codes[1]).sub_(ex_y)
    _scaled(codes[0], wx).div_(ex_w)
    _scaled(codes[1], wy).div_(ex_h)
    torch.div(gt_w, ex_w, out=codes[2]).log_()
    torch.div(gt_h, ex_h, out=codes[3]).log_()
    _scaled(codes[2], ww)
    _scaled(codes[3], wh)
    return codes


def _scaled(x: Tensor, w: float) -> Tensor:
    return x if w == 1 else x.mul_(w)


def decode_boxes(codes: Tensor, anchors: Tensor, weights: tuple[float, ...], clip: float) -> Tensor:
    """torchvision's BoxCoder.decode_single, broadcast over leading dims (same op order)."""
    widths = anchors[..., 2] - anchors[..., 0]
    heights = anchors[..., 3] - anchors[..., 1]
    ctr_x = anchors[..., 0] + 0.5 * widths
    ctr_y = anchors[..., 1] + 0.5 * heights
    wx, wy, ww, wh = weights
    dx = codes[..., 0] / wx
    dy = codes[..., 1] / wy
    dw = torch.clamp(codes[..., 2] / ww, max=clip)
    dh = torch.clamp(codes[..., 3] / wh, max=clip)
    pred_x = dx * widths + ctr_x
    pred_y = dy * heights + ctr_y
    half_w = 0.5 * (torch.exp(dw) * widths)
    half_h = 0.5 * (torch.exp(dh) * heights)
    return torch.stack((pred_x - half_w, pred_y - half_h, pred_x + half_w, pred_y + half_h), dim=-1)


def giou_loss(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """torchvision.ops.generalized_box_iou_loss(reduction="none") without its boolean-mask
    indexing (a host sync): [..., 4] x [..., 4] -> [...]."""
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    xk1, yk1 = torch.max(x1, x1g), torch.max(y1, y1g)
    xk2, yk2 = torch.min(x2, x2g), torch.min(y2, y2g)
    overlap = (yk2 > yk1) & (xk2 > xk1)
    inter = torch.where(overlap, (xk2 - xk1) * (yk2 - yk1), 0.0)
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - inter
    iou = inter / (union + eps)
    area_c = (torch.max(x2, x2g) - torch.min(x1, x1g)) * (torch.max(y2, y2g) - torch.min(y1, y1g))
    return 1 - (iou - ((area_c - union) / (area_c + eps)))


class FocalLossSum(torch.autograd.Function):
    """Per-image sums [N] of torchvision's sigmoid focal loss over the anchors where `keep`
    ([N, A] bool) holds, the target of anchor a being class `target_class[n, a]` (-1: none;
    anchors with a class must be kept). The gradient is computed with the loss: backward is one
    multiply, not autograd's twenty-odd passes over [N, A, C].

    Elementwise it follows torchvision's expression, with its modulating factor (1 - p_t)**gamma,
    p_t = p * t + (1 - p) * (1 - t), bit for bit, and its weights alpha_t (exact for alpha 0.25
    or 0.5, within an ulp otherwise). The cross-entropy is computed more accurately than torch's
    BCE, `(1 - t) * x - log_sigmoid(x)`, which cancels for confident negatives (5e-5 relative at
    p = 0.01, every digit lost by p = 1e-6) and whose log_sigmoid is not vectorised on the CPU:
    softplus(+-x) = relu(+-x) + log1p(u), u = exp(-|x|), log1p(u) = u * log(w) / (w - 1) with
    w = 1 + u (Kahan's form; the ratio is 1 where w == 1). Only arithmetic, no `where`: on the
    CPU a where costs five multiplies. Gradient, m = 1 - p_t, dce/dx = p - t, dp/dx = p (1 - p):
    a_t * ((p - t) * m**gamma + ce * gamma * m**(gamma - 1) * (1 - 2t) * p * (1 - p)).
    """

    @staticmethod
    def forward(ctx, logits, target_class, keep, alpha: float, gamma: float):
        grad = torch.empty_like(logits) if ctx.needs_input_grad[0] else None
        sums = [
            _focal_chunk(
                logits[part],
                target_class[part],
                keep[part],
                alpha,
                gamma,
                None if grad is None else grad[part],
            )
            for part in image_chunks(logits.shape[0], logits[0].numel(), logits.device)
        ]
        if grad is not None:
            ctx.save_for_backward(grad)
        return torch.cat(sums) if len(sums) > 1 else sums[0]

    @staticmethod
    def backward(ctx, grad_out):
        (grad,) = ctx.saved_tensors
        return grad * grad_out[:, None, None], None, None, None, None


def _focal_chunk(x, target_class, keep, alpha, gamma, grad_out_buffer):
    """FocalLossSum for some images: their sums; their gradient into `grad_out_buffer`.

    Nine [n, A, C] buffers, the rest in place (see box_iou on page faults); every in-place
    step rounds as the out-of-place expression in the comment would."""
    classes = torch.arange(x.shape[-1], device=x.device)
    t = (target_class.unsqueeze(2) == classes).to(x.dtype)
    p = torch.sigmoid(x)
    one_minus_p = torch.rsub(p, 1)
    not_t = torch.rsub(t, 1)
    m = torch.mul(p, t).addcmul_(one_minus_p, not_t).neg_().add_(1)  # 1 - p_t
    u = x.abs().neg_().exp_()
    w = u + 1
    log1p_u = torch.log(w).div_(w.sub_(1)).nan_to_num_(nan=1.0).mul_(u)
    ce = not_t.sub_(t).mul_(x).clamp_(min=0).add_(log1p_u)  # relu(x * (1 - 2t)) + log1p
    mod = torch.mul(m, m, out=u) if gamma == 2 else torch.pow(m, gamma, out=u)
    grad = grad_out_buffer
    if grad is not None:
        torch.sub(p, t, out=grad).abs_().mul_(mod)  # |p - t| m**gamma
        dmod = m.mul_(2) if gamma == 2 else m.pow_(gamma - 1).mul_(gamma)
        grad.addcmul_(dmod.mul_(ce), one_minus_p.mul_(p))  # + ce dmod p (1 - p)
    # alpha_t with the sign of p - t, zero at ignored anchors: (1 - alpha) - t where kept
    background = keep.to(x.dtype)
    if alpha >= 0:
        signed = t.neg_().add_(background.mul_(1 - alpha).unsqueeze(2))
    else:
        signed = t.mul_(-2).add_(background.unsqueeze(2))
    if grad is not None:
        grad.mul_(signed)
    return ce.mul_(mod).mul_(signed.abs_()).sum(dim=(1, 2))


CPU_CHUNK_ELEMENTS = 1 << 18  # 1 MB of fp32: the temporaries of a chunk stay in cache
CPU_MAX_CHUNKS = 4  # and the number of dispatched ops stays bounded, whatever the batch


def image_chunks(n: int, per_image: int, device: torch.device) -> list[slice]:
    """Slices of a batch of n images of `per_image` elements each that the elementwise work
    is split into.

    On a GPU: the whole batch, one kernel per op. On the CPU: runs of images of about
    CPU_CHUNK_ELEMENTS elements (at most CPU_MAX_CHUNKS runs), so that each temporary is a
    reused, cache-resident buffer: whole-batch temporaries of several MB come fresh from the OS
    at every call (glibc returns freed memory above its trim threshold) and their page faults
    cost more than the arithmetic (measured: 1.6x -> 1.95x faster than torchvision at 16 images
    of 256 px with the R50-FPN anchors).
    """
    if device.type != "cpu" or n == 0:
        return [slice(0, n)]
    size = max(1, CPU_CHUNK_ELEMENTS // max(1, per_image), -(-n // CPU_MAX_CHUNKS))
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


class CoordinateLossSum(torch.autograd.Function):
    """Per-image sums [N] of torch's l1 loss (beta 0) or smooth l1 loss over the 4 coordinates
    of the foreground anchors (`foreground` [N, A] bool), on coordinate planes (`regression`
    [N, A, 4], `target` [4, N, A]); the values of F.l1_loss / F.smooth_l1_loss. The gradient,
    sign(d) or d / beta in the quadratic zone, is computed with the loss. Background anchors
    never reach the loss, even with non-finite targets; their gradient is masked by a multiply,
    so it stays 0 as long as the target and the regression there are not NaN."""

    @staticmethod
    def forward(ctx, regression, target, foreground, beta: float):
        d = regression.permute(2, 0, 1).contiguous().sub_(target)
        z = d.abs()
        if beta > 0:
            quadratic = z < beta
            loss = torch.where(quadratic, 0.5 * z * z / beta, z - 0.5 * beta)
        else:
            loss = z
        loss = torch.where(foreground, loss.sum(dim=0), 0.0).sum(dim=1)
        if ctx.needs_input_grad[0]:
            grad = torch.where(quadratic, d / beta, d.sign_()) if beta > 0 else d.sign_()
            ctx.save_for_backward(grad.mul_(foreground.to(grad.dtype)))
        return loss

    @staticmethod
    def backward(ctx, grad_out):
        (grad,) = ctx.saved_tensors
        return (grad * grad_out[:, None]).permute(1, 2, 0), None, None, None


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, alpha: float, gamma: float) -> Tensor:
    """torchvision.ops.sigmoid_focal_loss(reduction="none"), its expression, differentiated by
    autograd: the reference FocalLossSum is tested against."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


@dataclass(frozen=True)
class RetinaNetLoss:
    """The loss of one torchvision RetinaNet configuration; `from_model` reads it off a model."""

    fg_iou_thresh: float = 0.5
    bg_iou_thresh: float = 0.4
    allow_low_quality_matches: bool = True
    box_loss: str = "l1"
    box_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    bbox_xform_clip: float = math.log(1000.0 / 16)
    smooth_l1_beta: float = 1.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0

    def __post_init__(self):
        if self.box_loss not in BOX_LOSSES:
            raise ValueError(f"box loss {self.box_loss!r} not supported; one of {BOX_LOSSES}")
        if self.bg_iou_thresh > self.fg_iou_thresh:
            raise ValueError(
                f"bg_iou_thresh {self.bg_iou_thresh} is above fg_iou_thresh {self.fg_iou_thresh}"
            )

    @classmethod
    def from_model(cls, model) -> RetinaNetLoss:
        """Thresholds, box loss type and box coder of a torchvision RetinaNet (unwrapped)."""
        matcher, reg = model.proposal_matcher, model.head.regression_head
        return cls(
            fg_iou_thresh=matcher.high_threshold,
            bg_iou_thresh=matcher.low_threshold,
            allow_low_quality_matches=matcher.allow_low_quality_matches,
            box_loss=reg._loss_type,
            box_weights=tuple(reg.box_coder.weights),
            bbox_xform_clip=reg.box_coder.bbox_xform_clip,
        )

    def match(self, anchors: Tensor, targets: PaddedTargets) -> Tensor:
        """[N, A] int64: the gt index of each anchor, -1 background, -2 ignored."""
        anchors = _batched_anchors(anchors)
        with torch.autocast(anchors.device.type, enabled=False):
            # A zero box has IoU exactly 0 with every anchor: padded rows never match.
            boxes = torch.where(targets.valid.unsqueeze(2), targets.boxes.float(), 0.0)
            anchors = anchors.float()
            parts = []
            n, m, a = boxes.shape[0], boxes.shape[1], anchors.shape[1]
            for part in image_chunks(n, m * a, boxes.device):
                iou = box_iou(boxes[part], anchors if anchors.shape[0] == 1 else anchors[part])
                parts.append(
                    match_from_iou(
                        iou,
                        targets.valid[part],
                        self.fg_iou_thresh,
                        self.bg_iou_thresh,
                        self.allow_low_quality_matches,
                    )
                )
            return torch.cat(parts) if len(parts) > 1 else parts[0]

    def __call__(
        self, cls_logits: Tensor, bbox_regression: Tensor, anchors: Tensor, targets: PaddedTargets
    ) -> dict[str, Tensor]:
        """{"classification", "bbox_regression"}: 0-dim fp32 losses, as torchvision's."""
        n, a, c = cls_logits.shape
        if bbox_regression.shape != (n, a, 4):
            raise ValueError(
                f"bbox_regression has shape {tuple(bbox_regression.shape)}, expected {(n, a, 4)}"
            )
        anchors = _batched_anchors(anchors)
        if anchors.shape[-2] != a or anchors.shape[0] not in (1, n):
            raise ValueError(f"anchors have shape {tuple(anchors.shape)}, expected [{a}, 4]")
        if targets.boxes.shape[0] != n:
            raise ValueError(f"targets are for {targets.boxes.shape[0]} images, logits for {n}")
        with torch.autocast(cls_logits.device.type, enabled=False):
            anchors = anchors.float()
            matches = self.match(anchors, targets)
            foreground = matches >= 0
            per_image_fg = foreground.sum(dim=1).clamp(min=1)  # torchvision's max(1, n_fg)
            # Rows of the flattened targets: index_select is much faster than gather.
            m = targets.boxes.shape[1]
            offsets = torch.arange(n, device=matches.device).unsqueeze(1) * m
            rows = (matches.clamp(min=0) + offsets).view(-1)
            labels = targets.labels.reshape(-1).index_select(0, rows).view(n, a)
            target_class = torch.where(foreground, labels, -1)
            keep = matches != BETWEEN_THRESHOLDS
            focal = FocalLossSum.apply(
                cls_logits.float(), target_class, keep, self.focal_alpha, self.focal_gamma
            )
            box = self._box_loss(bbox_regression.float(), anchors, targets, rows, foreground)
        return {
            "classification": (focal / per_image_fg).sum() / n,
            "bbox_regression": (box / per_image_fg).sum() / n,
        }

    def _box_loss(self, regression, anchors, targets, rows, foreground) -> Tensor:
        """Per-image sums [N] of the box loss over the foreground anchors."""
        n, a = foreground.shape
        if self.box_loss == "giou":
            gt = targets.boxes.float().reshape(-1, 4).index_select(0, rows).view(n, a, 4)
            gt = torch.where(foreground.unsqueeze(2), gt, anchors)  # finite everywhere
            pred = decode_boxes(regression, anchors, self.box_weights, self.bbox_xform_clip)
            return torch.where(foreground, giou_loss(pred, gt), 0.0).sum(dim=1)
        # Padded rows become unit boxes: finite codes everywhere, so masking by multiply is safe.
        unit = (torch.arange(4, device=rows.device) >= 2).float()  # (0, 0, 1, 1), no copy
        boxes = torch.where(targets.valid.unsqueeze(2), targets.boxes.float(), unit)
        planes = boxes.reshape(-1, 4).t()  # [4, N * M]
        gt = planes.index_select(1, rows).view(4, n, a)
        codes = encode_boxes(gt, anchors.movedim(-1, 0), self.box_weights)
        beta = self.smooth_l1_beta if self.box_loss == "smooth_l1" else 0.0
        return CoordinateLossSum.apply(regression, codes, foreground, beta)


def _batched_anchors(anchors: Tensor) -> Tensor:
    if anchors.dim() == 2:
        return anchors.unsqueeze(0)
    if anchors.dim() != 3 or anchors.shape[-1] != 4:
        raise ValueError(f"anchors must be [A, 4] or [N, A, 4], got {tuple(anchors.shape)}")
    return anchors
