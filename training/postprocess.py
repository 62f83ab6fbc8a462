"""RetinaNet's detections for a whole batch at once: torchvision's postprocess_detections
without its loop over images and levels.

torchvision, for each image and each pyramid level: sigmoid, threshold, top-k, decode, clip;
then one batched NMS per image. Here each level is one top-k over the batch ([N, k], the
candidates below the score threshold masked out rather than removed), the decoding and the
clipping are batched, and one `batched_nms` runs over the whole batch with a separate index
for every (image, class). The result is the same detections, up to the order of equal scores
(and IoU within rounding of the NMS threshold: NMS sees the boxes with other class offsets).

    post = BatchedPostprocess.from_model(model)
    detections = post(head["cls_logits"], head["bbox_regression"], anchors, image_sizes,
                      num_anchors_per_level)  # [{"boxes", "scores", "labels"}] per image

`anchors` [A, 4] (one canvas, `training.anchors.canvas_anchors`) or [N, A, 4]; `image_sizes`
the (height, width) of each image inside the canvas, as `ImageList.image_sizes`, which boxes
are clipped to; `num_anchors_per_level` H * W * anchors-per-location of each level, in the
head's order. Boxes are in canvas pixels: mapping them back to the original image sizes is
the caller's, as `GeneralizedRCNNTransform.postprocess` is in torchvision; `detect` does
both for a RetinaNet in eval mode (what evaluation calls instead of `model(images)`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision.ops import batched_nms

from .anchors import grid_anchors
from .loss import decode_boxes

_GPU_NMS_BOXES = 25_000  # torchvision.ops.batched_nms's offset-trick limit on CUDA (100k numel)


@dataclass(frozen=True)
class BatchedPostprocess:
    score_thresh: float = 0.05
    nms_thresh: float = 0.5
    detections_per_img: int = 300
    topk_candidates: int = 1000
    box_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    bbox_xform_clip: float = math.log(1000.0 / 16)
    nms_chunk_boxes: int | None = None  # None: 25k boxes on a GPU, the whole batch on a CPU

    @classmethod
    def from_model(cls, model) -> BatchedPostprocess:
        """The settings of a torchvision RetinaNet (unwrapped)."""
        return cls(
            score_thresh=model.score_thresh,
            nms_thresh=model.nms_thresh,
            detections_per_img=model.detections_per_img,
            topk_candidates=model.topk_candidates,
            box_weights=tuple(model.box_coder.weights),
            bbox_xform_clip=model.box_coder.bbox_xform_clip,
        )

    @torch.no_grad()
    def __call__(
        self,
        cls_logits: Tensor,
        bbox_regression: Tensor,
        anchors: Tensor,
        image_sizes: list[tuple[int, int]],
        num_anchors_per_level: list[int],
    ) -> list[dict[str, Tensor]]:
        n, a, c = cls_logits.shape
        if sum(num_anchors_per_level) != a:
            raise ValueError(
                f"num_anchors_per_level adds up to {sum(num_anchors_per_level)}, "
                f"the head has {a} anchors"
            )
        if len(image_sizes) != n:
            raise ValueError(f"{len(image_sizes)} image sizes for a batch of {n}")
        anchors = anchors.unsqueeze(0) if anchors.dim() == 2 else anchors
        scores, labels, boxes = self._candidates(
            cls_logits, bbox_regression, anchors, num_anchors_per_level
        )
        boxes = _clip(boxes, image_sizes)

        # One NMS for the batch: a separate class index per (image, class).
        image = torch.arange(n, device=scores.device).unsqueeze(1).expand_as(scores)
        kept = (scores > self.score_thresh).flatten().nonzero().squeeze(1)
        boxes, scores = boxes.reshape(-1, 4)[kept], scores.flatten()[kept]
        labels, image = labels.flatten()[kept], image.flatten()[kept]
        order = self._nms(boxes, scores, image * c + labels, image, n)

        # Group by image, keeping the score order (a stable sort), then the first D of each.
        order = order[torch.sort(image[order], stable=True).indices]
        per_image = torch.bincount(image[order], minlength=n)
        starts = per_image.cumsum(0) - per_image
        rank = torch.arange(order.numel(), device=order.device) - starts[image[order]]
        order = order[rank < self.detections_per_img]
        counts = per_image.clamp(max=self.detections_per_img).tolist()
        return [
            {"boxes": b, "scores": s, "labels": k}
            for b, s, k in zip(
                boxes[order].split(counts),
                scores[order].split(counts),
                labels[order].split(counts),
                strict=True,
            )
        ]

    def _nms(self, boxes, scores, groups, image, n) -> Tensor:
        """Indices kept by NMS within each (image, class) group, by decreasing score.

        One `batched_nms` for the batch, except on a GPU past 25k boxes: there torchvision's
        offset trick stops and it loops over the groups (80 classes x 16 images: 1280 small
        NMS calls, each with a host sync), so the batch is cut into runs of whole images of
        at most `nms_chunk_boxes` boxes (an image with more gets a run of its own)."""
        limit = self.nms_chunk_boxes
        if limit is None:
            limit = _GPU_NMS_BOXES if boxes.device.type == "cuda" else boxes.shape[0]
        if boxes.shape[0] <= limit:
            return batched_nms(boxes, scores, groups, self.nms_thresh)
        runs = image_runs(torch.bincount(image, minlength=n).cumsum(0).tolist(), limit)
        keep = torch.cat(
            [
                batched_nms(boxes[a:b], scores[a:b], groups[a:b], self.nms_thresh) + a
                for a, b in runs
            ]
        )
        return keep[scores[keep].argsort(descending=True, stable=True)]

    def _candidates(self, cls_logits, bbox_regression, anchors, num_anchors_per_level):
        """Per level, the top-k scores of each image above the threshold ([N, k]; the others
        masked to -1), their labels and decoded boxes, concatenated over levels."""
        n, _, c = cls_logits.shape
        scores, labels, boxes = [], [], []
        start = 0
        for count in num_anchors_per_level:
            logits = cls_logits[:, start : start + count].float()
            level_scores = torch.sigmoid(logits).flatten(1)  # [N, count * C], anchor-major
            level_scores = level_scores.masked_fill(level_scores <= self.score_thresh, -1.0)
            top, index = level_scores.topk(min(self.topk_candidates, count * c), dim=1)
            anchor = index.div(c, rounding_mode="floor") + start
            regression = bbox_regression.gather(1, anchor.unsqueeze(2).expand(-1, -1, 4))
            if anchors.shape[0] == 1:
                level_anchors = anchors[0].index_select(0, anchor.flatten()).view(n, -1, 4)
            else:
                level_anchors = anchors.gather(1, anchor.unsqueeze(2).expand(-1, -1, 4))
            regression, level_anchors = regression.float(), level_anchors.float()
            boxes.append(
                decode_boxes(regression, level_anchors, self.box_weights, self.bbox_xform_clip)
            )
            scores.append(top)
            labels.append(index % c)
            start += count
        return torch.cat(scores, 1), torch.cat(labels, 1), torch.cat(boxes, 1)


def image_runs(ends: list[int], limit: int) -> list[tuple[int, int]]:
    """Cut images (box ranges ending at `ends`, cumulative) into consecutive runs of at most
    `limit` boxes; an image larger than `limit` is a run of its own.

    >>> image_runs([10, 20, 45, 50, 90], limit=25)
    [(0, 20), (20, 45), (45, 50), (50, 90)]
    """
    runs, start, last = [], 0, 0
    for end in ends:
        if end - start > limit and last > start:
            runs.append((start, last))
            start = last
        last = end
    runs.append((start, last))
    return runs


def _clip(boxes: Tensor, image_sizes: list[tuple[int, int]]) -> Tensor:
    """torchvision.ops.clip_boxes_to_image for each image's own (height, width)."""
    sizes = torch.tensor(image_sizes, dtype=boxes.dtype).to(boxes.device, non_blocking=True)
    height, width = sizes[:, 0, None, None], sizes[:, 1, None, None]
    zero = torch.zeros((), dtype=boxes.dtype, device=boxes.device)
    x = boxes[..., 0::2].clamp(min=zero).minimum(width)
    y = boxes[..., 1::2].clamp(min=zero).minimum(height)
    return torch.stack((x, y), dim=-1).flatten(-2)


@torch.inference_mode()
def detect(model, images: list[Tensor], anchors: dict | None = None) -> list[dict[str, Tensor]]:
    """`model(images)` of a torchvision RetinaNet in eval mode, with the batched
    post-processing: the same transform (resize, normalise, pad), backbone and head, fp32
    anchors per canvas (cached in `anchors`, keyed by canvas size), then boxes mapped back to
    each input image's size by the transform, exactly as torchvision does."""
    original_sizes = [tuple(img.shape[-2:]) for img in images]
    image_list, _ = model.transform(images)
    features = list(model.backbone(image_list.tensors).values())
    head = model.head(features)
    canvas = tuple(image_list.tensors.shape[-2:])
    grids = [tuple(f.shape[-2:]) for f in features]
    cache = {} if anchors is None else anchors
    if (canvas, tuple(grids)) not in cache:
        cache[canvas, tuple(grids)] = grid_anchors(
            model.anchor_generator, canvas, grids, image_list.tensors.device
        )
    per_location = model.anchor_generator.num_anchors_per_location()
    counts = [h * w * k for (h, w), k in zip(grids, per_location, strict=True)]
    post = BatchedPostprocess.from_model(model)
    detections = post(
        head["cls_logits"],
        head["bbox_regression"],
        cache[canvas, tuple(grids)],
        image_list.image_sizes,
        counts,
    )
    return model.transform.postprocess(detections, image_list.image_sizes, original_sizes)
