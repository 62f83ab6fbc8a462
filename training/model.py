"""torchvision's RetinaNet on a selectable ResNet-FPN backbone.

Two shapes, picked by the backbone:
- `resnet18`, `resnet34`, `resnet50`: the standard RetinaNet: FPN P3-P7 with 256 channels,
  anchors of 32 to 512 px, a 4-conv GroupNorm head (torchvision's v2 head).
- `resnet10` (one block per stage, the CPU default): FPN P3-P5 with 64 channels, anchors of
  16, 32 and 64 px and a 2-conv GroupNorm head. About twice as fast as resnet18 on a CPU and
  suited to small images (128-256 px).

No weights are downloaded: `--weights PATH` loads a local file (a whole model or a ResNet).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import nn
from torchvision.models import resnet
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.detection import RetinaNet
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.ops import FeaturePyramidNetwork, FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from .anchors import Fp32AnchorGenerator
from .config import BACKBONES
from .errors import UsageError

log = logging.getLogger("training")


class BackboneFPN(nn.Module):
    """ResNet stages C3-C5 into an FPN; `out_channels` as RetinaNet expects."""

    def __init__(self, body: resnet.ResNet, out_channels: int, extra_levels: bool):
        super().__init__()
        in_channels = [_stage_channels(body, n) for n in (2, 3, 4)]
        self.body = IntermediateLayerGetter(
            body, return_layers={"layer2": "0", "layer3": "1", "layer4": "2"}
        )
        self.fpn = FeaturePyramidNetwork(
            in_channels,
            out_channels,
            extra_blocks=LastLevelP6P7(out_channels, out_channels) if extra_levels else None,
        )
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        return self.fpn(self.body(x))


def _stage_channels(body: resnet.ResNet, stage: int) -> int:
    block = getattr(body, f"layer{stage}")[-1]
    last_conv = block.conv3 if isinstance(block, resnet.Bottleneck) else block.conv2
    return last_conv.out_channels


def _resnet(name: str, norm_layer) -> resnet.ResNet:
    if name == "resnet10":
        return resnet.ResNet(resnet.BasicBlock, [1, 1, 1, 1], norm_layer=norm_layer)
    return getattr(resnet, name)(weights=None, norm_layer=norm_layer)


def build_model(
    backbone: str, num_classes: int, image_size: int, frozen_bn: bool = False
) -> RetinaNet:
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    body = _resnet(backbone, FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d)
    small = backbone == "resnet10"
    channels, levels, head_convs = (64, 3, 2) if small else (256, 5, 4)
    base = 16 if small else 32
    sizes = tuple(
        (s, int(s * 2 ** (1 / 3)), int(s * 2 ** (2 / 3)))
        for s in (base * 2**i for i in range(levels))
    )
    anchors = Fp32AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * levels)
    head = RetinaNetHead(
        channels,
        anchors.num_anchors_per_location()[0],
        num_classes,
        norm_layer=partial(nn.GroupNorm, 16 if small else 32),
    )
    for branch in (head.classification_head, head.regression_head):
        branch.conv = branch.conv[:head_convs]
    return RetinaNet(
        BackboneFPN(body, channels, extra_levels=not small),
        num_classes,
        min_size=image_size,
        max_size=image_size,
        anchor_generator=anchors,
        head=head,
        detections_per_img=100,
    )


def strip_prefixes(state_dict: dict) -> dict:
    """Drop DDP's `module.` and torch.compile's `_orig_mod.` prefixes."""
    out = {}
    for k, v in state_dict.items():
        for p in ("module.", "_orig_mod."):
            while k.startswith(p):
                k = k[len(p) :]
        out[k] = v
    return out


def load_weights(model: RetinaNet, path: str) -> None:
    """Start from a local file: a whole RetinaNet (ours or torchvision's) or a bare ResNet.

    Tensors whose name or shape does not match (a head for another number of classes) are
    skipped and counted in the log.
    """
    state = read_saved(path, "--weights").state
    if not any(k.startswith(("backbone.", "head.")) for k in state):
        state = {f"backbone.body.{k}": v for k, v in state.items()}  # a ResNet's state_dict
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise UsageError(
            f"--weights {path}: no tensor matches this model ({len(state)} tensors in the file)"
        )
    model.load_state_dict(usable, strict=False)
    log.info(
        "weights from %s: %d tensors loaded, %d of the model's left as initialised, "
        "%d in the file unused",
        path,
        len(usable),
        len(own) - len(usable),
        len(state) - len(usable),
    )


def infer_architecture(state_dict: dict) -> tuple[str, int]:
    """(backbone, num_classes) of a saved RetinaNet state_dict."""
    keys = set(state_dict)
    if "backbone.body.layer1.0.conv3.weight" in keys:
        backbone = "resnet50"
    elif "backbone.body.layer3.5.conv1.weight" in keys:
        backbone = "resnet34"
    elif "backbone.body.layer1.1.conv1.weight" in keys:
        backbone = "resnet18"
    else:
        backbone = "resnet10"
    logits = state_dict["head.classification_head.cls_logits.weight"].shape[0]
    anchors = state_dict["head.regression_head.bbox_reg.weight"].shape[0] // 4
    return backbone, logits // anchors


# model_N.pt and model_best.pt: a plain dict, loadable with torch.load(weights_only=True).
MODEL_FORMAT = "ddp-cluster/retinanet-model/1"


def model_file(model: RetinaNet, args, class_names: list[str], epoch: int, metrics: dict) -> dict:
    """What model_N.pt holds: the state_dict under "model" and what predict/evaluate need."""
    return {
        "format": MODEL_FORMAT,
        "model": model.state_dict(),
        "backbone": args.backbone,
        "image_size": args.image_size,
        "frozen_bn": bool(args.frozen_bn),
        "class_names": list(class_names),
        "num_classes": len(class_names),
        "epoch": epoch,
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, int | float | None)},
        "config": dict(vars(args)),
    }


@dataclass
class Saved:
    """A model read from a checkpoint.pt, a model_N.pt, or a bare state_dict."""

    state: dict
    config: dict = field(default_factory=dict)
    class_names: list[str] | None = None
    image_size: int | None = None
    backbone: str | None = None
    kind: str = "state_dict"  # "model file", "checkpoint" or "state_dict"
    epoch: int | None = None  # a model file's epoch; a checkpoint's next epoch

    def describe(self) -> str:
        if self.kind == "model file":
            return f"model file of epoch {self.epoch}"
        if self.kind == "checkpoint":
            return f"checkpoint before epoch {self.epoch}"
        return "bare state_dict (no metadata)"


def read_saved(path: str, flag: str = "--checkpoint") -> Saved:
    """Read a checkpoint.pt, a model_N.pt or a bare state_dict; UsageError if it is none."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UsageError(f"{flag} {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{flag} {path} is a folder: give a model_N.pt or checkpoint.pt") from None
    except Exception as exc:  # pickle, zip and unpickler errors all mean "not our file"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            f"{flag} {path} is not a model file torch can read ({first[:120]}): give a "
            "model_N.pt, model_best.pt or checkpoint.pt written by python -m training"
        ) from None
    if not isinstance(obj, dict):
        raise UsageError(f"{flag} {path} holds a {type(obj).__name__}, not a model's state")
    if isinstance(obj.get("model"), dict):
        config = obj.get("config") or {}
        saved = Saved(
            strip_prefixes(obj["model"]),
            config,
            obj.get("class_names"),
            obj.get("image_size") or config.get("image_size"),
            obj.get("backbone") or config.get("backbone"),
            "model file" if obj.get("format") == MODEL_FORMAT else "checkpoint",
            obj.get("epoch"),
        )
    else:
        saved = Saved(strip_prefixes(obj))
    if not all(isinstance(v, torch.Tensor) for v in saved.state.values()):
        raise UsageError(f"{flag} {path} does not hold a model's state_dict")
    return saved


def architecture(saved: Saved, path: str, flag: str = "--checkpoint") -> tuple[str, int]:
    """(backbone, num_classes) of a saved RetinaNet; UsageError for another kind of model."""
    try:
        backbone, num_classes = infer_architecture(saved.state)
    except KeyError:
        raise UsageError(
            f"{flag} {path} is not one of this project's RetinaNet models (no detection head)"
        ) from None
    return saved.backbone or backbone, num_classes


def load_into(model: RetinaNet, saved: Saved, path: str, flag: str = "--checkpoint") -> None:
    try:
        model.load_state_dict(saved.state)
    except RuntimeError as exc:
        raise UsageError(
            f"{flag} {path} does not fit the model built for it: {str(exc).splitlines()[0]}"
        ) from None
