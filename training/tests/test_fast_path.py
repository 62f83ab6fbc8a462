"""Defects of the GPU path found in review (issue 10), each held on the CPU in-process."""

from __future__ import annotations

import argparse
import logging

import pytest
import torch
from torch.nn.parallel import DistributedDataParallel

from training import distributed as du
from training import recipe
from training.anchors import canvas_anchors
from training.config import get_args_parser, parse_args, resolve_defaults
from training.data.synthetic import SyntheticDataset
from training.engine import EpochStats, StopFlag, TrainContext, train_one_epoch
from training.loss import RetinaNetLoss
from training.model import build_model


def test_model_anchors_are_fp32_under_bf16_autocast_as_in_evaluation():
    model = build_model("resnet50", 3, 512).eval()
    images = torch.zeros(1, 3, 512, 512)
    image_list, _ = model.transform([images[0]])
    shapes = [(64, 64), (32, 32), (16, 16), (8, 8), (4, 4)]
    features = [torch.zeros(1, 8, h, w, dtype=torch.bfloat16) for h, w in shapes]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        (trained,) = model.anchor_generator(image_list, features)
    (evaluated,) = model.anchor_generator(image_list, [f.float() for f in features])
    assert trained.dtype == torch.float32
    assert all(c.dtype == torch.float32 for c in model.anchor_generator.cell_anchors)
    torch.testing.assert_close(trained, evaluated, rtol=0, atol=0)
    torch.testing.assert_close(trained, canvas_anchors(model, (512, 512)), rtol=0, atol=0)


def test_amp_gives_fp16_where_bf16_is_only_emulated(monkeypatch):
    """Turing (T4) reports bf16 support only with emulation: it must get fp16 + GradScaler."""
    monkeypatch.setattr(
        torch.cuda, "is_bf16_supported", lambda including_emulation=True: bool(including_emulation)
    )
    args = argparse.Namespace(amp=True)
    assert recipe.amp_dtype(args, torch.device("cuda")) == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert recipe.amp_dtype(args, torch.device("cuda")) == torch.bfloat16


def _args(*argv):
    args = parse_args(get_args_parser(), ["--device=cpu", *argv])
    resolve_defaults(args, "cpu", 1)
    return args


def test_lr_scales_linearly_with_the_global_batch_unless_none():
    model = build_model("resnet10", 3, 64)
    sgd = recipe.build_optimizer(model, _args("--optimizer=sgd", "--lr=0.01", "--batch-size=64"))
    assert sgd.param_groups[0]["lr"] == pytest.approx(0.04)
    same = recipe.build_optimizer(model, _args("--lr=0.01", "--batch-size=64", "--lr-scale=none"))
    assert same.param_groups[0]["lr"] == pytest.approx(0.01)


def test_norm_weight_decay_applies_to_norm_layers_and_biases():
    model = build_model("resnet10", 3, 64)
    default = recipe.build_optimizer(model, _args())
    assert [g["weight_decay"] for g in default.param_groups] == [1e-4]  # torchvision's default
    opt = recipe.build_optimizer(model, _args("--norm-weight-decay=0"))
    decayed, norms = opt.param_groups
    assert (decayed["weight_decay"], norms["weight_decay"]) == (1e-4, 0.0)
    bn = model.backbone.body.bn1
    gn = model.head.classification_head.conv[0][1]
    no_decay = {id(p) for p in norms["params"]}
    for p in (bn.weight, bn.bias, gn.weight, model.head.classification_head.cls_logits.bias):
        assert id(p) in no_decay
    assert id(model.head.classification_head.cls_logits.weight) not in no_decay
    assert len(decayed["params"]) + len(norms["params"]) == len(list(model.parameters()))


def test_frozen_bn_without_weights_is_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(get_args_parser(), ["--frozen-bn"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --frozen-bn needs --weights")


def make_context(loss: str, steps: int, batch: int = 2, size: int = 64, **extra):
    """A DDP-wrapped CPU model, its optimizer and a list of batches, as train.py builds them."""
    torch.manual_seed(0)
    args = _args(f"--batch-size={batch}", "--progress=log", "--log-every=1", f"--loss={loss}")
    for key, value in extra.items():
        setattr(args, key, value)
    detector = build_model("resnet10", 3, size)
    model = DistributedDataParallel(recipe.TrainForward(detector))
    optimizer = recipe.build_optimizer(detector, args)
    data = SyntheticDataset(batch * steps, size, "train", seed=0)
    batches = []
    for step in range(steps):
        items = [data[(0, step * batch + i)] for i in range(batch)]
        batches.append(([img for img, _ in items], [t for _, t in items]))
    criterion = RetinaNetLoss.from_model(detector) if loss == "batched" else None
    ctx = TrainContext(
        model,
        optimizer,
        torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0),
        torch.amp.GradScaler("cuda", enabled=False),
        torch.device("cpu"),
        None,
        args,
        StopFlag(),
        criterion=criterion,
    )
    return ctx, batches


def test_nonfinite_gradient_with_a_finite_loss_skips_the_step(process_group, caplog):
    ctx, batches = make_context("batched", steps=1)
    detector = ctx.model.module.detector
    weight = detector.head.regression_head.bbox_reg.weight
    weight.register_hook(lambda g: g * float("inf"))
    before = [p.detach().clone() for p in detector.parameters()]
    stats = EpochStats()
    with caplog.at_level(logging.WARNING, logger="training"):
        train_one_epoch(ctx, batches, 0, 0, 1, stats)
    assert stats.skipped == 1 and stats.steps == 0
    assert "non-finite gradients at step 0" in caplog.text
    for old, new in zip(before, detector.parameters(), strict=True):
        assert torch.equal(old, new)


def test_ddp_broadcasts_buffers_only_for_rank_local_batchnorm(process_group):
    """FrozenBatchNorm2d statistics are the same on every rank: no broadcast before each
    forward. Trainable BatchNorm on the CPU (no SyncBatchNorm there) keeps the broadcast."""
    info = du.DistInfo(0, 1, 0, torch.device("cpu"), "gloo")
    frozen = recipe.wrap_model(
        recipe.TrainForward(build_model("resnet10", 3, 64, True)), _args(), info
    )
    plain = recipe.wrap_model(recipe.TrainForward(build_model("resnet10", 3, 64)), _args(), info)
    assert frozen.forward_sync_buffers is False
    assert plain.forward_sync_buffers is True
    # CPU parameters: the default (foreach) optimizer; fused is for CUDA parameters
    assert recipe.build_optimizer(build_model("resnet10", 3, 64), _args()).defaults["fused"] is None
