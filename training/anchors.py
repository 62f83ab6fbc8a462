"""Anchors precomputed in fp32 for a fixed canvas, whatever autocast is doing.

torchvision's AnchorGenerator builds anchors in the feature maps' dtype: under bf16 autocast
they come out in bf16, a few pixels off at 512-1216 px (and it converts its own `cell_anchors`
to bf16 in place, so later fp32 calls inherit the rounding). For a canvas of fixed size the
anchors are a constant: compute them once here, in fp32, and pass them to the loss and the
post-processing.

    anchors = canvas_anchors(model, (512, 512), device)  # [A, 4] fp32, torchvision's order
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.models.detection.anchor_utils import AnchorGenerator

FIRST_STRIDE = 8  # this project's FPNs start at P3 (training/model.py)


def fpn_grid_sizes(
    canvas: tuple[int, int], num_levels: int, first_stride: int = FIRST_STRIDE
) -> list[tuple[int, int]]:
    """Feature map sizes of a ResNet-FPN from P3 on for an input of `canvas` (height, width).

    Every stride-2 convolution and pooling of torchvision's ResNet and of LastLevelP6P7 (kernel 3
    or 7, padding 1 or 3) maps a side s to ceil(s / 2), so level k has ceil(side / stride_k).
    """
    sizes = []
    for level in range(num_levels):
        stride = first_stride * 2**level
        sizes.append(tuple(-(-side // stride) for side in canvas))
    return sizes


def grid_anchors(
    generator: AnchorGenerator,
    canvas: tuple[int, int],
    grid_sizes: list[tuple[int, int]],
    device: torch.device | str = "cpu",
) -> Tensor:
    """[A, 4] fp32 anchors, the values and order of `generator(images, features)` in fp32.

    The cell anchors are rebuilt in fp32 from `generator.sizes` and `generator.aspect_ratios`
    rather than read from `generator.cell_anchors`, which autocast may have left in bf16.
    """
    if len(grid_sizes) != len(generator.sizes):
        raise ValueError(
            f"{len(grid_sizes)} feature maps for an anchor generator of "
            f"{len(generator.sizes)} levels"
        )
    with torch.autocast(torch.device(device).type, enabled=False):
        per_level = []
        for (gh, gw), sizes, ratios in zip(
            grid_sizes, generator.sizes, generator.aspect_ratios, strict=True
        ):
            cell = generator.generate_anchors(sizes, ratios, torch.float32, torch.device(device))
            # As AnchorGenerator.forward: integer strides, int shifts promoted when added.
            stride_h, stride_w = canvas[0] // gh, canvas[1] // gw
            shifts_x = torch.arange(gw, dtype=torch.int32, device=device) * stride_w
            shifts_y = torch.arange(gh, dtype=torch.int32, device=device) * stride_h
            shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
            shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
            shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)
            per_level.append((shifts.view(-1, 1, 4) + cell.view(1, -1, 4)).reshape(-1, 4))
        return torch.cat(per_level)


def canvas_anchors(model, canvas: tuple[int, int], device: torch.device | str = "cpu") -> Tensor:
    """[A, 4] fp32 anchors of a model from `training.model.build_model` for a padded canvas
    (height, width), as the model's own AnchorGenerator makes them in fp32."""
    generator = model.anchor_generator
    grid = fpn_grid_sizes(canvas, len(generator.sizes))
    return grid_anchors(generator, canvas, grid, device)


class Fp32AnchorGenerator(AnchorGenerator):
    """torchvision's AnchorGenerator that always builds fp32 anchors, autocast or not.

    torchvision takes the anchors' dtype from the feature maps, so under bf16 autocast the
    anchors used for matching in training were bf16 (pixels off) while evaluation, without
    autocast, decoded with fp32 ones. Only the maps' sizes matter here: pass empty fp32
    stand-ins of the same height and width, so nothing is copied.
    """

    def forward(self, image_list, feature_maps: list[Tensor]) -> list[Tensor]:
        shapes = [f.new_empty((0, 0, *f.shape[-2:]), dtype=torch.float32) for f in feature_maps]
        with torch.autocast(feature_maps[0].device.type, enabled=False):
            return super().forward(image_list, shapes)
