"""On a CUDA GPU: nccl, bf16 autocast and channels-last for a few real training steps."""

from __future__ import annotations

import json

import pytest
import torch

from .conftest import run, torchrun_cmd

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible)"),
]


def test_nccl_bf16_channels_last_trains_and_checkpoints(tmp_path):
    out = tmp_path / "out"
    args = (
        "--device=cuda",
        "--backbone=resnet18",
        "--image-size=256",
        "--train-size=64",
        "--val-size=16",
        "--batch-size=16",
        "--epochs=1",
        "--amp",
        "--channels-last",
        "--workers=2",
        "--progress=log",
        f"--output-dir={out}",
    )
    r = run(torchrun_cmd(*args, nproc=1), timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    assert "backend nccl device cuda:0" in r.stderr
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert row["skipped_steps"] == 0 and row["loss"] > 0 and row["img_per_s"] > 0
    assert torch.load(out / "model_0.pt", weights_only=True)


def test_bf16_autocast_forward_backward_on_gpu():
    from training.model import build_model

    if not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    model = build_model("resnet18", 3, 128).cuda().train().to(memory_format=torch.channels_last)
    images = [torch.rand(3, 128, 128, device="cuda") for _ in range(4)]
    targets = [
        {
            "boxes": torch.tensor([[8.0, 8.0, 60.0, 60.0]], device="cuda"),
            "labels": torch.tensor([1], device="cuda"),
        }
        for _ in range(4)
    ]
    with torch.autocast("cuda", dtype=torch.bfloat16):
        losses = model(images, targets)
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_compiled_forward_loss_builds_one_graph_set_per_canvas_and_matches_eager(process_group):
    """--compile on a canvas batch with inductor on the GPU: see the CPU test's helper."""
    from torch._inductor.compile_fx import compile_fx

    from .test_fast_path import graphs_per_canvas_batch

    seen = graphs_per_canvas_batch("cuda", compile_fx, "resnet18", 256)
    assert seen[0] > 0 and seen == [seen[0], *[2 * seen[0]] * 4]


def test_optimizers_are_fused_for_gpu_parameters():
    from training import recipe
    from training.config import get_args_parser, parse_args, resolve_defaults
    from training.model import build_model

    model = build_model("resnet18", 3, 128).cuda()
    for name in ("adamw", "sgd"):
        args = parse_args(get_args_parser(), ["--device=cuda", f"--optimizer={name}"])
        resolve_defaults(args, "cuda", 1)
        assert recipe.build_optimizer(model, args).defaults["fused"] is True
