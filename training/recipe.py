"""What a run is built from: the DDP-wrapped model (seed step 3), the module DDP wraps, the
optimizer, the learning-rate schedule and the mixed-precision type."""

from __future__ import annotations

import logging
import math

import torch
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel
from torchvision.ops import FrozenBatchNorm2d

from . import distributed as du
from .config import LR_REFERENCE_BATCH, scaled_lr

log = logging.getLogger("training")


def wrap_model(model: torch.nn.Module, args, info: du.DistInfo) -> DistributedDataParallel:
    """Seed step 3: SyncBatchNorm where it means something, then DDP."""
    trainable_bn = [
        m for m in model.modules() if isinstance(m, _BatchNorm) and m.weight is not None
    ]
    trainable_bn = [m for m in trainable_bn if m.weight.requires_grad]
    synced = False
    if args.sync_bn:
        if not trainable_bn:
            log.warning(
                "--sync-bn changes nothing: the model has no trainable BatchNorm "
                "(FrozenBatchNorm2d keeps fixed statistics)"
            )
        elif info.device.type != "cuda":
            log.info(
                "SyncBatchNorm skipped: it works on GPUs only; each CPU process keeps its "
                "own BatchNorm statistics (%d layers)",
                len(trainable_bn),
            )
        else:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            log.info("SyncBatchNorm: converted %d BatchNorm layers", len(trainable_bn))
            synced = True
    # Rank 0's buffers are broadcast before every forward only where ranks can differ:
    # rank-local BatchNorm statistics. Frozen or synced BatchNorm is the same everywhere.
    # (torch 2.14 spells broadcast_buffers=False this way; the sync at wrapping stays, and
    # --weights, read on rank 0 only, needs it for FrozenBatchNorm2d's buffers.)
    return DistributedDataParallel(
        model,
        device_ids=[info.local_rank] if info.device.type == "cuda" else None,
        find_unused_parameters=args.find_unused_parameters,
        gradient_as_bucket_view=True,
        forward_sync_buffers=bool(trainable_bn) and not synced,
    )


class TrainForward(torch.nn.Module):
    """The module DDP wraps, so that its hooks see every training forward.

    `forward(images, targets)` is the detector's own (torchvision's loss); `forward(batch)`
    with a [N, 3, H, W] tensor runs backbone -> head only and returns (cls_logits,
    bbox_regression) for the batched loss (training/loss.py).
    """

    def __init__(self, detector: torch.nn.Module):
        super().__init__()
        self.detector = detector

    def forward(self, images, targets=None):
        if isinstance(images, torch.Tensor):
            head = self.detector.head(list(self.detector.backbone(images).values()))
            return head["cls_logits"], head["bbox_regression"]
        return self.detector(images, targets)


_FUSED = ("cpu", "cuda")  # device types of torch's fused AdamW and SGD that this job runs on


def build_optimizer(model: torch.nn.Module, args) -> torch.optim.Optimizer:
    """SGD or AdamW at the scaled rate; norm layers and biases take --norm-weight-decay when
    given (torchvision's references: `split_normalization_params`, biases with the norms)."""
    lr = scaled_lr(args)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if args.norm_weight_decay is None:
        groups = [{"params": [p for _, p in trainable], "weight_decay": args.weight_decay}]
    else:
        norm_ids = {
            id(p)
            for m in model.modules()
            if isinstance(m, _NORM_LAYERS)
            for p in m.parameters(recurse=False)
        }
        norm = [p for n, p in trainable if id(p) in norm_ids or n.endswith(".bias")]
        other = [p for n, p in trainable if not (id(p) in norm_ids or n.endswith(".bias"))]
        groups = [
            {"params": other, "weight_decay": args.weight_decay},
            {"params": norm, "weight_decay": args.norm_weight_decay},
        ]
    if lr != args.lr:
        log.info(
            "learning rate %.3g (--lr %.3g x batch %d / %d, --lr-scale linear)",
            lr,
            args.lr,
            args.batch_size,
            LR_REFERENCE_BATCH,
        )
    # One fused kernel for the whole update, on GPUs and CPUs: its step counters stay on the
    # device (the CPU's foreach AdamW reads each one on the host), and it takes a `found_inf`
    # tensor, so that a non-finite step is skipped without a host read (engine.optimizer_step).
    fused = True if trainable and all(p.device.type in _FUSED for _, p in trainable) else None
    if args.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr, fused=fused)
    return _zero_momentum(torch.optim.SGD(groups, lr=lr, momentum=args.momentum, fused=fused))


def _zero_momentum(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """Fused SGD makes its momentum buffers at its first step with empty_like and leaves them
    uninitialised when found_inf skips that step. Zeros from the start give the same first
    step (no dampening: 0 x momentum + gradient) and a skip that changes nothing."""
    if isinstance(optimizer, torch.optim.SGD):
        for group in optimizer.param_groups:
            if group["fused"] and group["momentum"]:
                for p in group["params"]:
                    optimizer.state[p].setdefault("momentum_buffer", torch.zeros_like(p))
    return optimizer


def load_optimizer_state(optimizer: torch.optim.Optimizer, saved: dict) -> None:
    """A checkpoint's optimizer state with this process's kernels: its moments and step
    counts, but `fused`/`foreach` as build_optimizer chose them here (load_state_dict would
    take the saved ones: a checkpoint of an unfused optimizer, from before CPUs were fused
    or from another device, would turn the skip on the device off)."""
    groups = [dict(g) for g in saved["param_groups"]]
    for group, ours in zip(groups, optimizer.param_groups, strict=False):
        group.update({k: ours[k] for k in ("fused", "foreach") if k in ours})
    optimizer.load_state_dict({**saved, "param_groups": groups})
    _zero_momentum(optimizer)  # a state saved before its first step has none


_NORM_LAYERS = (_BatchNorm, torch.nn.GroupNorm, torch.nn.LayerNorm, FrozenBatchNorm2d)


def make_lr_lambda(args, steps_per_epoch: int):
    """Linear warmup from 0.1% of the rate, then cosine to zero or steps down at --lr-steps."""
    total = max(1, args.epochs * steps_per_epoch)
    warmup = args.warmup_steps if args.warmup_steps is not None else min(1000, total // 20)
    lr_steps = args.lr_steps or [round(args.epochs * 2 / 3), round(args.epochs * 8 / 9)]
    milestones = [e * steps_per_epoch for e in lr_steps]

    def factor(step: int) -> float:
        if step < warmup:
            return 0.001 + 0.999 * step / warmup
        if args.lr_schedule == "cosine":
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return 0.5 * (1 + math.cos(math.pi * progress))
        return args.lr_gamma ** sum(step >= m for m in milestones)

    return factor


def amp_dtype(args, device: torch.device) -> torch.dtype | None:
    if not args.amp:
        return None
    if device.type != "cuda":
        log.warning("--amp: ignored on the CPU (mixed precision here is for GPUs)")
        return None
    # Emulated bf16 (Turing, e.g. T4) is slow: those GPUs get fp16 with a GradScaler.
    native_bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
    return torch.bfloat16 if native_bf16 else torch.float16
