"""Defects of the GPU path found in review (issue 10), each held on the CPU in-process."""

from __future__ import annotations

import argparse
import itertools
import logging
import math

import pytest
import torch
from torch.nn.parallel import DistributedDataParallel

from training import distributed as du
from training import recipe
from training.anchors import canvas_anchors
from training.canvas import CanvasCollate
from training.compiled import ForwardLoss
from training.config import get_args_parser, parse_args, resolve_defaults
from training.data import build_dataset, train_loader
from training.data.synthetic import SyntheticDataset
from training.engine import EpochStats, NonFiniteLoss, StopFlag, TrainContext, train_one_epoch
from training.loss import RetinaNetLoss
from training.model import build_model
from training.opcount import OpRecorder


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


def test_sync_every_is_1_on_cpus_and_log_every_on_gpus_unless_given():
    gpu = parse_args(get_args_parser(), ["--device=cuda", "--log-every=7"])
    resolve_defaults(gpu, "cuda", 1)
    assert (_args("--log-every=7").sync_every, gpu.sync_every) == (1, 7)
    assert _args("--sync-every=3").sync_every == 3


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


def make_context(loss: str, steps: int, batch: int = 2, size: int = 64, *flags, **extra):
    """A DDP-wrapped CPU model, its optimizer and a list of batches, as train.py builds them:
    image lists, or canvas batches from the job's loader with `--input=canvas` in `flags`."""
    torch.manual_seed(0)
    args = _args(
        f"--batch-size={batch}",
        f"--train-size={batch * steps}",
        f"--image-size={size}",
        "--workers=0",
        "--progress=log",
        "--log-every=1",
        f"--loss={loss}",
        *flags,
    )
    for key, value in extra.items():
        setattr(args, key, value)
    detector = build_model("resnet10", 3, size)
    model = DistributedDataParallel(recipe.TrainForward(detector))
    optimizer = recipe.build_optimizer(detector, args)
    if "--input=canvas" in flags:
        info = du.DistInfo(0, 1, 0, torch.device("cpu"), "gloo")
        loader, sampler, _ = train_loader(build_dataset(args, "train"), args, info)
        sampler.set_epoch(0)
        batches = list(itertools.islice(loader, steps))
    else:
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


def _per_step(ctx, batches, steps: int) -> tuple[list[dict], list[int]]:
    """train_one_epoch under an OpRecorder: each step's host syncs, and the tensors it made
    from host data (data loading excluded: the batches are made before)."""
    marks = []

    def mark():
        marks.append((dict(rec.syncs), rec.host_data))

    def feed():
        for batch in batches:
            mark()
            yield batch

    with OpRecorder() as rec:
        train_one_epoch(ctx, feed(), 0, 0, steps, EpochStats())
        mark()
    syncs = [
        {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
        for (before, _), (after, _) in itertools.pairwise(marks)
    ]
    return syncs, [after - before for (_, before), (_, after) in itertools.pairwise(marks)]


def test_training_steps_do_not_synchronise_with_the_host_outside_reads(process_group):
    """The default recipe (canvas input, batched loss, fused AdamW) on the CPU: no host
    sync in a step, except one read of the pending steps at every --log-every and
    --sync-every step (counted whole: forward, loss, backward, all-reduce, skip, optimizer,
    schedule). Before, AdamW's CPU step counters alone cost 64 `.item()` calls a step.
    No step makes a tensor from host data either, except the first on a canvas (its anchors
    and the normalisation constants); before, `normalise` copied mean and std every step."""
    ctx, batches = make_context("batched", 8, 2, 64, "--input=canvas", log_every=4, sync_every=4)
    assert ctx.optimizer.defaults["fused"] is True
    read = {"Tensor.tolist": 1}
    syncs, host_data = _per_step(ctx, batches, 8)
    assert syncs == [{}, {}, {}, read] * 2
    assert host_data[0] > 0 and host_data[1:] == [0] * 7
    ctx.args.sync_every = 2  # reads for a quicker stop, between the log steps
    assert _per_step(ctx, batches, 8) == ([{}, read] * 4, [0] * 8)


def graphs_per_canvas_batch(device: str, compile_graph, backbone: str, size: int) -> list[int]:
    """--compile (ForwardLoss) on batches of two canvases, the larger listed first: the
    count of graphs compiled after each batch, the losses checked against eager mode on the
    way. `compile_graph(gm, inputs)` is the backend that compiles each graph."""
    torch.manual_seed(0)
    detector = build_model(backbone, 3, size).to(device)
    model = DistributedDataParallel(recipe.TrainForward(detector))
    graphs = []

    def counting(gm, inputs):
        graphs.append(len(gm.graph.nodes))
        return compile_graph(gm, inputs)

    mean, std = detector.transform.image_mean, detector.transform.image_std
    criterion = RetinaNetLoss.from_model(detector)
    compiled = ForwardLoss(model, criterion, mean, std, compile=True, backend=counting)
    eager = ForwardLoss(model, criterion, mean, std)
    half = size // 2
    collate = CanvasCollate([(size, size), (half, size)], max_boxes=4)
    gen = torch.Generator().manual_seed(0)
    target = {
        "boxes": torch.tensor([[8.0, 8.0, half - 4.0, half - 8.0]]),
        "labels": torch.tensor([1]),
    }
    seen = []
    for h, w in [(size, size), (half, size), (size - 6, size), (half - 4, size - 56), (size, size)]:
        img = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=gen)
        images, targets = collate([(img, target)] * 2)
        assert images.pixels.shape[-2:] == ((size, size) if h > half else (half, size))
        images, targets = images.to(device), type(targets)(*(t.to(device) for t in targets))
        anchors = canvas_anchors(detector, tuple(images.pixels.shape[-2:]), device)
        ours, ref = compiled(images, targets, anchors), eager(images, targets, anchors)
        for key in ours:
            torch.testing.assert_close(ours[key], ref[key], rtol=1e-4, atol=1e-5)
        (ours["classification"] + ours["bbox_regression"]).backward()
        seen.append(len(graphs))
    return seen


def test_compile_builds_one_graph_set_per_canvas_and_matches_eager(process_group):
    """--compile, traced by dynamo on the CPU (each graph run as traced: inductor's C++
    build would take minutes here): the second canvas compiles its own graphs once, the
    canvases seen before compile nothing (static shapes, bounded recompiles). Before, the
    collate took the first canvas that fits, not the smallest, when they came unsorted."""
    seen = graphs_per_canvas_batch("cpu", lambda gm, inputs: gm.forward, "resnet10", 128)
    assert seen[0] > 0 and seen == [seen[0], *[2 * seen[0]] * 4]


def _parameters(ctx):
    return [p.detach().clone() for p in ctx.model.module.detector.parameters()]


def test_nonfinite_steps_are_skipped_on_the_device_and_reported_exactly_at_the_read(
    process_group, caplog
):
    """Losses made non-finite at steps 1 and 2, read at step 4: both steps skipped (no
    parameter, moment or step count changes: the same state as training on steps 0 and 3
    alone), then the warnings, counts and losses of each step, as a read per step gives."""
    ctx, batches = make_context("batched", 4, 2, 64, log_every=4, sync_every=4)
    ctx.inject = {1, 2}
    stats = EpochStats()
    with caplog.at_level(logging.WARNING, logger="training"):
        assert train_one_epoch(ctx, batches, 0, 0, 4, stats) == (4, False)
    assert (stats.steps, stats.skipped, stats.images) == (2, 2, 8)
    assert math.isfinite(stats.loss) and stats.loss > 0
    for step, run in ((1, 1), (2, 2)):
        assert (
            f"non-finite loss at step {step} (epoch 0) on 1 of 1 ranks; step skipped on all "
            f"ranks ({run} in a row)" in caplog.text
        )
    ref, ref_batches = make_context("batched", 4, 2, 64)
    train_one_epoch(ref, [ref_batches[0], ref_batches[3]], 0, 0, 2, EpochStats())
    for a, b in zip(_parameters(ctx), _parameters(ref), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(ctx.optimizer.state.values(), ref.optimizer.state.values(), strict=True):
        assert all(torch.equal(a[k], b[k]) for k in ("step", "exp_avg", "exp_avg_sq"))


def test_max_nonfinite_stops_at_the_read_naming_the_step(process_group):
    ctx, batches = make_context("batched", 4, 2, 64, log_every=4, sync_every=4, max_nonfinite=2)
    ctx.inject = {0, 1}
    with pytest.raises(NonFiniteLoss, match=r"2 consecutive steps .* last at step 1$"):
        train_one_epoch(ctx, batches, 0, 0, 4, EpochStats())
    assert ctx.global_step == 4  # found at the read: up to --sync-every steps later


def test_a_stop_request_takes_effect_at_the_next_read(process_group):
    ctx, batches = make_context("batched", 6, 2, 64, log_every=4, sync_every=3)

    def feed():
        for n, batch in enumerate(batches):
            if n == 1:
                ctx.stop.requested = True  # as the SIGTERM handler does, during step 1
            yield batch

    stats = EpochStats()
    assert train_one_epoch(ctx, feed(), 0, 0, 6, stats) == (3, True)
    assert (stats.steps, stats.images) == (3, 6)  # every step trained is in the sums


@pytest.mark.parametrize("how", ["fp16 scaler", "not fused"])
@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler")  # the step is skipped
def test_other_optimizer_paths_skip_a_nonfinite_step(process_group, how):
    """GradScaler (fp16; its CPU twin here): the NaN put into a gradient makes the scaler
    skip the step and lower its scale. A non-fused optimizer reads the flag on the host."""
    ctx, batches = make_context("batched", 1, 2, 64)
    if how == "fp16 scaler":
        ctx.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    else:
        ctx.optimizer = torch.optim.AdamW(ctx.model.parameters(), lr=1e-3, foreach=True)
        ctx.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(ctx.optimizer, lambda _: 1.0)
    ctx.inject = {0}
    before, stats = _parameters(ctx), EpochStats()
    train_one_epoch(ctx, batches, 0, 0, 1, stats)
    assert stats.skipped == 1
    assert all(torch.equal(a, b) for a, b in zip(before, _parameters(ctx), strict=True))
    if how == "fp16 scaler":
        assert ctx.scaler.get_scale() == 2.0**7


def test_fused_sgd_skipping_its_first_step_leaves_no_trace():
    """torch's fused SGD makes its momentum buffers at its first step with empty_like and
    leaves them uninitialised when found_inf skips that step; build_optimizer starts them
    at zero, which gives the same first step."""
    model = build_model("resnet10", 3, 64)
    gen = torch.Generator().manual_seed(0)
    grads = [[torch.randn(p.shape, generator=gen) for p in model.parameters()] for _ in range(2)]
    states = []
    for skip_first in (True, False):
        torch.manual_seed(0)
        model = build_model("resnet10", 3, 64)
        opt = recipe.build_optimizer(model, _args("--optimizer=sgd"))
        assert opt.defaults["fused"] is True
        for n, step_grads in enumerate(grads):
            if n == 0 and not skip_first:
                continue
            for p, g in zip(model.parameters(), step_grads, strict=True):
                p.grad = g.clone()
            opt.found_inf = torch.tensor(float(skip_first and n == 0))
            opt.step()
            del opt.found_inf
        states.append(([p.detach() for p in model.parameters()], opt.state_dict()["state"]))
    (params, state), (ref_params, ref_state) = states
    assert all(torch.equal(a, b) for a, b in zip(params, ref_params, strict=True))
    for k in ref_state:
        assert torch.equal(state[k]["momentum_buffer"], ref_state[k]["momentum_buffer"])


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_a_checkpoint_of_an_unfused_optimizer_resumes_fused(optimizer):
    """A checkpoint of the unfused optimizer (CPU runs before CPUs were fused) keeps its
    state but not its kernel: the resumed optimizer is fused and still skips on the device."""
    model = build_model("resnet10", 3, 64)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    params = list(model.parameters())
    old = (
        torch.optim.AdamW(params, lr=1e-3)
        if optimizer == "adamw"
        else torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    )
    old.step()
    opt = recipe.build_optimizer(model, _args(f"--optimizer={optimizer}"))
    recipe.load_optimizer_state(opt, old.state_dict())
    assert all(group["fused"] for group in opt.param_groups)
    before = [p.detach().clone() for p in params]
    opt.found_inf = torch.tensor(1.0)
    opt.step()  # the unfused kernels refuse found_inf
    del opt.found_inf
    assert all(torch.equal(a, b) for a, b in zip(before, params, strict=True))
    for p in params:
        assert all(torch.equal(v, old.state[p][k]) for k, v in opt.state[p].items())
