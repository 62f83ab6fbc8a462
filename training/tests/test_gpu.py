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
    """--compile on a canvas batch: inductor, two canvases, each compiled once (the count of
    graphs stops growing after both were seen) and the losses of eager mode."""
    from torch._inductor.compile_fx import compile_fx
    from torch.nn.parallel import DistributedDataParallel

    from training.anchors import canvas_anchors
    from training.canvas import CanvasCollate
    from training.compiled import ForwardLoss
    from training.loss import RetinaNetLoss
    from training.model import build_model
    from training.recipe import TrainForward

    torch.manual_seed(0)
    detector = build_model("resnet18", 3, 256).cuda()
    model = DistributedDataParallel(TrainForward(detector))
    graphs = []

    def counting_inductor(gm, inputs):
        graphs.append(len(gm.graph.nodes))
        return compile_fx(gm, inputs)

    mean, std = detector.transform.image_mean, detector.transform.image_std
    criterion = RetinaNetLoss.from_model(detector)
    compiled = ForwardLoss(model, criterion, mean, std, compile=True, backend=counting_inductor)
    eager = ForwardLoss(model, criterion, mean, std)
    collate = CanvasCollate([(256, 256), (128, 256)], max_boxes=4)
    gen = torch.Generator().manual_seed(0)
    target = {"boxes": torch.tensor([[8.0, 8.0, 100.0, 90.0]]), "labels": torch.tensor([1])}
    seen = []
    for h, w in [(256, 256), (128, 256), (250, 256), (120, 200), (256, 256)]:
        img = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=gen)
        images, targets = collate([(img, target)] * 4)
        images, targets = images.to("cuda"), type(targets)(*(t.cuda() for t in targets))
        anchors = canvas_anchors(detector, tuple(images.pixels.shape[-2:]), "cuda")
        ours, ref = compiled(images, targets, anchors), eager(images, targets, anchors)
        for key in ours:
            torch.testing.assert_close(ours[key], ref[key], rtol=1e-4, atol=1e-5)
        (ours["classification"] + ours["bbox_regression"]).backward()
        seen.append(len(graphs))
    per_canvas = seen[0]
    assert per_canvas > 0 and seen == [per_canvas, 2 * per_canvas, *[2 * per_canvas] * 3]


def test_optimizers_are_fused_for_gpu_parameters():
    from training import recipe
    from training.config import get_args_parser, parse_args, resolve_defaults
    from training.model import build_model

    model = build_model("resnet18", 3, 128).cuda()
    for name in ("adamw", "sgd"):
        args = parse_args(get_args_parser(), ["--device=cuda", f"--optimizer={name}"])
        resolve_defaults(args, "cuda", 1)
        assert recipe.build_optimizer(model, args).defaults["fused"] is True
