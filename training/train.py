"""Train torchvision's RetinaNet with DistributedDataParallel.

One process (CPU, or one GPU):

    python -m training --epochs 3

One node, N processes (one per GPU; on a CPU-only node N gloo processes):

    torchrun --standalone --nnodes=1 --nproc_per_node=N -m training --output-dir outputs

Two nodes (run on each node; HOST is the first node's address, JOB any shared name):

    torchrun --nnodes=2 --nproc_per_node=N --rdzv_backend=c10d --rdzv_endpoint=HOST:29400 \\
        --rdzv_id=JOB --max-restarts=3 -m training --config job.yaml

With --max-restarts, export TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 first: otherwise a
restarted group can read the old group's addresses from torchrun's store (pytorch#135712).

The seed's six steps, in order: (1) `distributed.init_distributed`: the process group from
RANK, WORLD_SIZE and LOCAL_RANK with init_method="env://", nccl on GPUs and gloo on CPUs, a
barrier, logging that only rank 0 prints at INFO; (2) `data.train_loader`: a
DistributedSampler with shuffling and per-process batch = global batch / world size;
(3) `recipe.wrap_model`: SyncBatchNorm where there is trainable BatchNorm on GPUs, then DDP;
(4) `sampler.set_epoch(epoch)` at the start of every epoch; (5) rank 0 alone writes
`model_{epoch}.pt` (and `checkpoint.pt` with --shared-output-dir; otherwise the first process
of every node keeps one, see nodes.py); (6) the launch lines above.

On SIGTERM (systemctl stop, torchrun) or a first Ctrl-C the job finishes its step, writes
checkpoint.pt and exits 0 (130 after Ctrl-C); the next launch resumes from there (`--resume
auto`). Exit status 1 means training failed (non-finite losses, a crash), 2 a user mistake
(flags, files, data, checkpoints, environment; one `error:` line, see errors.py).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

import torch
from torch.nn.parallel import DistributedDataParallel

from . import checkpoint as ckpt
from . import distributed as du
from . import nodes, pictures, run_dir
from .config import get_args_parser, parse_args, resolve_defaults
from .data import DataError, build_dataset, check_data, train_loader, val_loader
from .engine import (
    EpochStats,
    NonFiniteLoss,
    StopFlag,
    TrainContext,
    evaluate,
    injected_nonfinite,
    train_one_epoch,
)
from .errors import UsageError, run_cli
from .loss import RetinaNetLoss
from .model import build_model, load_weights, model_file
from .recipe import (
    TrainForward,
    amp_dtype,
    build_optimizer,
    load_optimizer_state,
    make_lr_lambda,
    wrap_model,
)

log = logging.getLogger("training")

__all__ = ["get_args_parser", "main"]


def main(args) -> int:
    """Run the job; returns the exit status (0 also after a SIGTERM checkpoint, 130 after a
    Ctrl-C one). User mistakes raise UsageError (exit 2, the same message on every rank)."""
    info = du.init_distributed(args.device, args.dist_backend)
    try:
        return _train(args, info)
    except du.SharedError as exc:
        log.error("%s", exc)  # rank 0 failed where it works alone; the same on every rank
        return 1
    except NonFiniteLoss as exc:
        log.error("%s", exc)
        return 1
    finally:
        du.cleanup()


@dataclass
class Run:
    """What one training run holds from set-up to its last epoch (the names of torchvision's
    references: `model` is the DDP wrapper, `model_without_ddp` the detector it trains)."""

    args: object
    info: du.DistInfo
    train_set: object
    val_set: object
    loader: object
    sampler: object
    per_rank: int  # images per process and step
    steps_per_epoch: int
    val: object  # the validation loader
    model: DistributedDataParallel
    model_without_ddp: torch.nn.Module
    optimizer: torch.optim.Optimizer
    lr_scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    node: nodes.Node | None = None
    config: dict = field(default_factory=dict)  # rank 0's flags, saved in every checkpoint
    # Where the run stands; a resume sets these from the checkpoint.
    start_epoch: int = 0
    start_step: int = 0
    global_step: int = 0
    elapsed: float = 0.0  # seconds trained before this launch (elapsed_s goes on)
    stats: EpochStats = field(default_factory=EpochStats)
    best: dict = field(default_factory=lambda: {"map": -1.0, "map50": -1.0, "epoch": -1})
    saved_at: dict = field(default_factory=dict)  # the checkpoint on disk: named if a save fails
    # Rank 0: the rows of metrics.jsonl so far; they travel in the checkpoint, so that the
    # history follows rank 0 to another node. None: resumed from a checkpoint without them.
    metrics: list | None = field(default_factory=list)
    eval_pending: int | None = None  # an epoch trained and saved, its evaluation still owed
    t_start: float = 0.0


def _train(args, info: du.DistInfo) -> int:
    """Set up, resume when there is a checkpoint, then train epoch after epoch."""
    resolve_defaults(args, info.device.type, info.world_size)
    stop = StopFlag().install()
    torch.manual_seed(args.seed)
    # The output folders and the checkpoint first: a mistake there is found in a second.
    node = nodes.this_node(args, info)
    loaded = nodes.locate(args, info, node)
    if loaded is not None:
        du.on_rank0(lambda: run_dir.check_resume(loaded[0]["config"], args, loaded[1]))
    run = setup(args, info, loaded)
    run.node, run.config = node, du.broadcast(dict(vars(args)))
    if loaded is not None:
        resume(run, *loaded)
        loaded = None  # the model and optimizer hold their own copies now
    writer = _open_writer(run)
    ctx = TrainContext(
        run.model,
        run.optimizer,
        run.lr_scheduler,
        run.scaler,
        info.device,
        run.amp_dtype,
        args,
        stop,
        writer,
        run.global_step,
        inject=injected_nonfinite(info.rank),
        criterion=(
            RetinaNetLoss.from_model(run.model_without_ddp) if args.loss == "batched" else None
        ),
    )
    run.t_start = time.time() - run.elapsed  # elapsed_s continues across a resume
    status = train_epochs(run, ctx)
    if status is None:
        _log_done(run, writer)
        return 0
    return status


def setup(args, info: du.DistInfo, loaded: tuple[dict, str] | None) -> Run:
    """Seed steps 2 and 3: the data and its loaders, then the model wrapped in DDP, the
    optimizer, the schedule and the scaler, all as a fresh run has them."""
    train_set, val_set = build_dataset(args, "train"), build_dataset(args, "val")
    check_data(train_set, val_set)  # raises the same DataError on every rank
    if train_set.class_names != val_set.class_names:
        raise DataError("training and validation data list different classes")
    if loaded is not None:
        run_dir.check_resume_classes(loaded[0].get("class_names"), train_set.class_names, loaded[1])
    for ds in (train_set, val_set):
        if hasattr(ds, "describe"):
            log.info("%s", ds.describe())
    loader, sampler, per_rank = train_loader(train_set, args, info)
    steps_per_epoch = sampler.num_samples // per_rank
    val = val_loader(val_set, args, info)
    log.info(
        "%s data: %d training / %d validation images, %d classes; %d steps per epoch, "
        "batch %d (%d per process)",
        args.dataset,
        len(train_set),
        len(val_set),
        train_set.num_classes,
        steps_per_epoch,
        args.batch_size,
        per_rank,
    )

    model = build_model(args.backbone, train_set.num_classes, args.image_size, args.frozen_bn)
    if loaded is None and args.weights:
        # Rank 0 reads the file; DDP copies rank 0's parameters to every rank when it wraps.
        du.on_rank0(lambda: load_weights(model, args.weights))
    model.to(info.device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    if info.device.type == "cuda" and args.input == "canvas":
        torch.backends.cudnn.benchmark = True  # a few fixed shapes: tune each once
    model = wrap_model(TrainForward(model), args, info)
    model_without_ddp = model.module.detector
    optimizer = build_optimizer(model_without_ddp, args)
    lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, make_lr_lambda(args, steps_per_epoch)
    )
    dtype = amp_dtype(args, info.device)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    return Run(
        args,
        info,
        train_set,
        val_set,
        loader,
        sampler,
        per_rank,
        steps_per_epoch,
        val,
        model,
        model_without_ddp,
        optimizer,
        lr_scheduler,
        scaler,
        dtype,
    )


def resume(run: Run, state: dict, path: str) -> None:
    """Load a checkpoint into the run: the states, where the run stands, this rank's RNG."""
    args, info = run.args, run.info
    try:
        run.model_without_ddp.load_state_dict(state["model"])
        load_optimizer_state(run.optimizer, state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:  # the same on every rank
        raise UsageError(
            f"{path} does not fit this model (--backbone {args.backbone}, "
            f"{run.train_set.num_classes} classes, --optimizer {args.optimizer}): "
            f"{str(exc).splitlines()[0]}; use its flags, or --start-over"
        ) from None
    run.lr_scheduler.load_state_dict(state["lr_scheduler"])
    run.scaler.load_state_dict(state["scaler"])
    run.start_epoch, run.global_step = state["epoch"], state["global_step"]
    # Samples already seen this epoch, in steps of the current global batch.
    start_step = state["step"] * state["config"]["batch_size"] // args.batch_size
    run.start_step = min(start_step, run.steps_per_epoch)
    run.stats = EpochStats(**state["epoch_stats"])
    run.best = state["best"]
    run.elapsed = float(state.get("elapsed_s", 0.0))
    run.eval_pending = state.get("eval_pending")
    rows = state.get("metrics")
    run.metrics = None if rows is None else [r for r in rows if r["epoch"] < run.start_epoch]
    if len(state.get("rng", [])) == info.world_size:
        ckpt.set_rng_state(state["rng"][info.rank])
    log.info(
        "resumed from epoch %d, step %d/%d (%s)",
        run.start_epoch,
        run.start_step,
        run.steps_per_epoch,
        path,
    )
    if run.eval_pending is not None:
        log.info(
            "epoch %d was trained but not evaluated: evaluating epoch %d first",
            run.eval_pending,
            run.eval_pending,
        )
    run.saved_at.update(epoch=run.start_epoch, step=state["step"])


def _open_writer(run: Run):
    """Rank 0: the output folder, metrics.jsonl as of the resumed epoch (the checkpoint's
    rows, wherever they were written), TensorBoard."""
    if not run.info.is_main:
        return None
    out = run.args.output_dir
    os.makedirs(out, exist_ok=True)
    if run.metrics is None:
        run_dir.truncate_metrics(out, run.start_epoch)
    else:
        run_dir.write_metrics(out, run.metrics)
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(os.path.join(out, "tensorboard"), purge_step=run.global_step)


def save(
    run: Run,
    ctx: TrainContext,
    epoch: int,
    step: int,
    model_files: dict | None = None,
    eval_pending: int | None = None,
):
    """Every rank: gather the RNG states; rank 0 writes the model files, the writers (rank 0,
    or the first process of every node: nodes.py) checkpoint.pt; a failed write stops all
    ranks. `eval_pending`: the epoch whose evaluation is still owed (train_epochs)."""
    rng = du.all_gather(ckpt.rng_state())
    args, node = run.args, run.node
    common = {
        "epoch_stats": run.stats.as_dict(),
        "best": dict(run.best),
        "elapsed_s": time.time() - run.t_start,
        "metrics": list(run.metrics or []),
    }
    if nodes.several_write(args, node):
        # One state on every node: rank 0's BatchNorm buffers, epoch sums, best mAP and clock.
        nodes.sync_buffers(run.model_without_ddp)
        common = du.broadcast(common)
    where = f" on {node}" if nodes.several_write(args, node) and not run.info.is_main else ""

    def write():
        os.makedirs(args.output_dir, exist_ok=True)
        for name, payload in (model_files or {}).items():
            target = os.path.join(args.output_dir, name)
            try:
                ckpt.atomic_save(payload, target)
            except OSError as exc:
                raise UsageError(_save_failed(target, exc, run.saved_at)) from None
        state = {
            "model": run.model_without_ddp.state_dict(),
            "optimizer": run.optimizer.state_dict(),
            "lr_scheduler": run.lr_scheduler.state_dict(),
            "scaler": run.scaler.state_dict(),
            "epoch": epoch,
            "step": step,
            "global_step": ctx.global_step,
            "epoch_stats": common["epoch_stats"],
            "best": common["best"],
            "rng": rng,
            "config": dict(run.config),
            "class_names": list(run.train_set.class_names),
            "world_size": run.info.world_size,
            "elapsed_s": common["elapsed_s"],
            "eval_pending": eval_pending,
            "metrics": common["metrics"],
        }
        try:
            path = ckpt.save_checkpoint(state, args.output_dir)
        except OSError as exc:
            target = os.path.join(args.output_dir, ckpt.LATEST) + where
            raise UsageError(_save_failed(target, exc, run.saved_at)) from None
        log.info("saved %s (epoch %d, step %d)", path, epoch, step)

    nodes.on_writers(node, write)
    run.saved_at.update(epoch=epoch, step=step)


def train_epochs(run: Run, ctx: TrainContext) -> int | None:
    """Seed step 4 and the loop: train, evaluate, record and checkpoint every epoch.

    An epoch that is evaluated is checkpointed before its evaluation (marked eval_pending)
    and again after it (with its mAP, the best model and its metrics row): a stop while
    evaluating loses no training, and the next launch evaluates that epoch first. Returns
    None when the last epoch is done, or the exit status after a stop request (the
    checkpoint is written by then)."""
    args, stop = run.args, ctx.stop
    if run.eval_pending is not None:  # stopped while evaluating: that evaluation first
        status = evaluate_epoch(run, ctx, run.eval_pending)
        if status is not None:
            return status
    for epoch in range(run.start_epoch, args.epochs):
        run.sampler.set_epoch(epoch, start=run.start_step * run.per_rank)  # seed step 4
        step, stopped = train_one_epoch(
            ctx, run.loader, epoch, run.start_step, run.steps_per_epoch, run.stats
        )
        if stopped:
            save(run, ctx, epoch, step)
            return _stopped(stop, f"at epoch {epoch} step {step}")
        if not _eval_due(args, epoch):
            save(run, ctx, epoch + 1, 0, end_epoch(run, ctx, epoch, None))
            continue
        save(run, ctx, epoch + 1, 0, eval_pending=epoch)
        status = evaluate_epoch(run, ctx, epoch)
        if status is not None:
            return status
    return None


def _eval_due(args, epoch: int) -> bool:
    """Every --eval-every epochs, and after the last."""
    return bool(args.eval_every and (epoch + 1) % args.eval_every == 0) or epoch == args.epochs - 1


def _stopped(stop: StopFlag, where: str) -> int:
    log.info("stopped by %s %s; checkpoint written, exiting", stop.signal, where)
    return stop.exit_status


def evaluate_epoch(run: Run, ctx: TrainContext, epoch: int) -> int | None:
    """COCO mAP of the epoch just trained (its training is checkpointed already), then its
    record, model files and the checkpoint with them. Returns the exit status when a stop
    request ended the evaluation (every rank stops; the next launch evaluates again)."""
    args, info = run.args, run.info
    eval_out: dict = {}
    stats_map = evaluate(
        run.model_without_ddp, run.val, info.device, run.val_set, ctx.stop, args.progress, eval_out
    )
    if stats_map is None:
        return _stopped(ctx.stop, f"while evaluating epoch {epoch}")
    if info.is_main:
        pictures.log_evaluation(ctx.writer, args.output_dir, run.val_set, eval_out, epoch)
    save(run, ctx, epoch + 1, 0, end_epoch(run, ctx, epoch, stats_map))
    run.eval_pending = None
    return None


def end_epoch(run: Run, ctx: TrainContext, epoch: int, stats_map) -> dict:
    """Close the epoch: the best mAP, a fresh EpochStats and, on rank 0, the epoch's metrics
    and curves; returns the model files to write with the checkpoint (seed step 5)."""
    args, info = run.args, run.info
    summary = run.stats.summary()
    improved = bool(info.is_main and stats_map and stats_map[0] > run.best["map"])
    if improved:
        run.best = {"map": stats_map[0], "map50": stats_map[1], "epoch": epoch}
    run.stats = EpochStats()
    run.start_step = 0
    files = {}
    if info.is_main:  # seed step 5: rank 0 alone writes, the unwrapped model's state_dict
        record = _record_epoch(run, ctx.writer, epoch, summary, stats_map)
        if run.metrics is not None:
            run.metrics.append(record)
        try:
            pictures.write_curves(args.output_dir)
        except (OSError, ValueError) as exc:  # a convenience: never stop a run for it
            log.warning("could not draw curves.png: %s", exc)
        payload = model_file(run.model_without_ddp, args, run.train_set.class_names, epoch, record)
        files = {f"model_{epoch}.pt": payload}
        if improved:
            files["model_best.pt"] = payload
    return files


def _log_done(run: Run, writer) -> None:
    if not run.info.is_main:
        return
    if writer is not None:
        writer.close()
    args, best = run.args, run.best
    if best["epoch"] >= 0:
        log.info(
            "done: %d epochs; best mAP %.3f (mAP@0.5 %.3f) at epoch %d: %s (also %s)",
            args.epochs,
            best["map"],
            best["map50"],
            best["epoch"],
            os.path.join(args.output_dir, f"model_{best['epoch']}.pt"),
            os.path.join(args.output_dir, "model_best.pt"),
        )
    else:
        log.info("done: %d epochs; no evaluation ran", args.epochs)


def _save_failed(target: str, exc: OSError, saved_at: dict) -> str:
    kept = (
        f"the checkpoint of epoch {saved_at['epoch']}, step {saved_at['step']} is kept"
        if saved_at
        else "no earlier checkpoint exists"
    )
    return (
        f"could not write {target}: {run_dir.describe_os_error(exc)}; its temporary file was "
        f"removed and {kept}: free space or fix the folder's permissions, then relaunch "
        "(--resume auto continues from there)"
    )


def _record_epoch(run: Run, writer, epoch, summary, stats_map) -> dict:
    """One line of metrics.jsonl, TensorBoard scalars and a log line for the epoch.
    `world_size` is the number of processes at the epoch's end (a resume may change it)."""
    record = {"epoch": epoch, **summary, "map": None, "map50": None}
    if stats_map:
        record.update(map=stats_map[0], map50=stats_map[1], map75=stats_map[2])
    record.update(
        lr=run.optimizer.param_groups[0]["lr"],
        elapsed_s=round(time.time() - run.t_start, 1),
        world_size=run.info.world_size,
    )
    run_dir.append_metrics(run.args.output_dir, record)
    for key in ("loss", "img_per_s", "map", "map50"):
        if record[key] is not None:
            writer.add_scalar(f"epoch/{key}", record[key], epoch)
    writer.flush()
    log.info(
        "epoch %d: loss %.4f mAP %s mAP@0.5 %s %.1f img/s%s",
        epoch,
        record["loss"],
        "-" if record["map"] is None else f"{record['map']:.3f}",
        "-" if record["map50"] is None else f"{record['map50']:.3f}",
        record["img_per_s"],
        f", {record['skipped_steps']} steps skipped" if record["skipped_steps"] else "",
    )
    return record


def cli(argv=None) -> int:
    """`python -m training` under the error contract of training/errors.py."""
    return run_cli(lambda a: main(parse_args(get_args_parser(), a)), argv)
