"""One training epoch and one evaluation pass (the shape of torchvision's references/detection).

Each training step all-reduces one small vector: the two losses, a non-finite loss flag, a
stop flag and a non-finite gradient flag (every rank runs backward; DDP has all-reduced the
gradients by then). So every rank sees the same numbers and takes the same decisions: skip a
step whose loss or gradients are non-finite on any rank, stop after `--max-nonfinite` such
steps in a row, or stop because some rank got SIGTERM. No rank ever leaves the others waiting.

The step does not read the device from the host (no host synchronisation): the skip is
decided on the device (`optimizer_step`: the fused optimizer's `found_inf`; an optimizer
that is not fused reads the flag instead), and the vectors stay there until the host reads
them all at once (`StepSync`) at every `--log-every` step, every `--sync-every` step and at
the end of the epoch, so before any checkpoint. Each read replays its steps exactly as a
read per step would (the epoch's sums, a warning per skipped step with its number, the run
of non-finite steps); only the timing of two decisions moves. A stop request (SIGTERM,
Ctrl-C) takes effect at the next read, on every rank at the same step, and every step
trained until then is in the checkpoint. `--max-nonfinite` stops the run at the read after
the step that reached it (the message names that step).

`--sync-every` defaults to `--log-every` (20) on GPUs: a stop waits up to 20 steps, about 4 s
at the 181 ms of an H200 step of 16 images at 800 px, and a read (a wait for the device's
queue to drain) comes once per 20 steps. On CPUs it defaults to 1: the host is the device, a
read costs nothing, and 20 steps of `make train` take about 18 s on 2 busy cores, too close
to the 30 s torchrun gives its workers after its SIGTERM. Where 20 GPU steps take longer
than about 20 s, lower it.

Evaluation stops promptly on a stop request too: prediction checks the flag once per batch
(an all-reduce), and rank 0's COCO scoring, which cannot check it (pycocotools' evaluate and
accumulate take minutes on COCO-size sets), runs inside `StopFlag.interrupting()`, where the
signal handler raises `StopRequested` at once; then one all-reduce tells every rank, so no
rank is left waiting in a collective for a rank 0 that is still scoring.

Test hooks (tests only, not features): TRAINING_TEST_NONFINITE="RANK:STEP[,RANK:STEP...]"
makes the loss non-finite on that rank at that global step (counted from 0);
TRAINING_TEST_SLOW_SCORING=SECONDS makes rank 0's COCO scoring take that much longer (a
stand-in for pycocotools on a COCO-size validation set; it prints a line when it starts).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field

import torch
import torch.distributed as dist
from tqdm import tqdm

from . import distributed as du
from .anchors import canvas_anchors
from .canvas import CanvasImages, targets_to
from .coco_scoring import coco_stats
from .compiled import ForwardLoss
from .loss import RetinaNetLoss, pad_targets
from .postprocess import detect

log = logging.getLogger("training")


class NonFiniteLoss(RuntimeError):
    pass


class StopRequested(Exception):
    """Raised by the signal handler inside `StopFlag.interrupting()`."""


class StopFlag:
    """Set by the SIGTERM and SIGINT handlers; shared in every step's all-reduce and read on
    the host with the other flags (StepSync), so that every rank stops at the same step.

    SIGINT (Ctrl-C) once is handled like SIGTERM: finish the step, checkpoint, exit (130). A
    second Ctrl-C exits at once (the last checkpoint written is kept). A repeat that arrives
    within `REPEAT_S` of the first is the same request: the terminal sends Ctrl-C to every
    process of the group and torchrun forwards the one it received to its workers too.
    """

    REPEAT_S = 1.0

    def __init__(self, clock=time.monotonic):
        self.requested = False
        self.signal: str | None = None
        self._first = 0.0
        self._clock = clock
        self._raise = False

    def install(self) -> StopFlag:
        signal.signal(signal.SIGTERM, self)
        signal.signal(signal.SIGINT, self)
        return self

    def __call__(self, signum, _frame):
        name = signal.Signals(signum).name
        now = self._clock()
        if not self.requested:
            self.requested, self.signal, self._first = True, name, now
            if self._raise:  # work that cannot check the flag: stop it here
                log.warning("%s: stopping the evaluation; the epoch's checkpoint is written", name)
                raise StopRequested(name)
            log.warning("%s: finishing this step, then writing a checkpoint and exiting", name)
            return
        if signum == signal.SIGINT and now - self._first > self.REPEAT_S:
            from .checkpoint import remove_pending_temporaries

            remove_pending_temporaries()
            log.warning("second Ctrl-C: exiting now; the last checkpoint written is kept")
            os._exit(130)

    @contextlib.contextmanager
    def interrupting(self):
        """Within the block a stop request raises StopRequested at once (and on entry when one
        came before), for long work that cannot check the flag."""
        if self.requested:
            raise StopRequested(self.signal)
        self._raise = True
        try:
            yield
        finally:
            self._raise = False

    @property
    def exit_status(self) -> int:
        return 130 if self.signal == "SIGINT" else 0


@dataclass
class EpochStats:
    """Running sums of the current epoch; saved in checkpoints so a resumed epoch adds up."""

    loss: float = 0.0
    loss_classifier: float = 0.0
    loss_box_reg: float = 0.0
    steps: int = 0
    skipped: int = 0
    images: int = 0
    seconds: float = 0.0

    def summary(self) -> dict:
        n = max(1, self.steps)
        return {
            "loss": self.loss / n,
            "loss_classifier": self.loss_classifier / n,
            "loss_box_reg": self.loss_box_reg / n,
            "img_per_s": self.images / self.seconds if self.seconds else 0.0,
            "skipped_steps": self.skipped,
        }

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainContext:
    model: torch.nn.Module  # the DDP wrapper
    optimizer: torch.optim.Optimizer
    lr_scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    device: torch.device
    amp_dtype: torch.dtype | None
    args: object
    stop: StopFlag
    writer: object = None  # TensorBoard SummaryWriter on rank 0
    global_step: int = 0
    nonfinite_run: int = 0
    inject: set = field(default_factory=set)
    criterion: RetinaNetLoss | None = None  # --loss batched; None: torchvision's loss
    anchors: dict = field(default_factory=dict)  # canvas (H, W) -> [A, 4] fp32
    forward_loss: ForwardLoss | None = None  # --input canvas: made on the first batch


def injected_nonfinite(rank: int) -> set[int]:
    spec = os.environ.get("TRAINING_TEST_NONFINITE", "")
    steps = set()
    for item in filter(None, spec.split(",")):
        r, s = item.split(":")
        if int(r) == rank:
            steps.add(int(s))
    return steps


def _show_bar(progress: str) -> bool:
    return progress == "bar" or (progress == "auto" and sys.stderr.isatty())


def nonfinite_gradients(ctx: TrainContext) -> torch.Tensor:
    """1.0 where some gradient is NaN or infinite, on the device (read with the step's
    all-reduce, no sync of its own). With fp16's GradScaler 0.0: the scaler finds infs in
    the scaled gradients itself and skips the step."""
    grads = [p.grad for p in ctx.model.parameters() if p.grad is not None]
    if ctx.scaler.is_enabled() or not grads:
        return torch.zeros((), device=ctx.device)
    norms = torch._foreach_norm(grads)
    return (~torch.isfinite(torch.stack(norms).float().sum())).float()


def shared_flags(ctx: TrainContext, loss_cls, loss_reg, loss) -> torch.Tensor:
    """The step's one all-reduce, after backward (DDP has all-reduced the gradients): the
    sums over ranks of [classification loss, box loss, ranks with a non-finite loss, ranks
    asked to stop, non-finite gradients]. It stays on the device: `StepSync` reads it."""
    shared = torch.stack(
        [
            loss_cls.detach().float(),
            loss_reg.detach().float(),
            (~torch.isfinite(loss.detach())).float(),
            torch.full((), float(ctx.stop.requested), device=ctx.device),  # no host copy
            nonfinite_gradients(ctx),
        ]
    )
    dist.all_reduce(shared)
    return shared


def optimizer_step(ctx: TrainContext, shared: torch.Tensor) -> None:
    """Step the optimizer unless `shared` (the step's all-reduced flags, the same on every
    rank) says some rank's loss or gradients are non-finite, decided on the device.

    A fused optimizer (training/recipe.py: AdamW and SGD, CPUs and GPUs) takes the decision
    as its `found_inf` tensor, as GradScaler hands it over: the kernel leaves the parameters
    and moments as they are and AdamW's step count goes back. With fp16's GradScaler, a NaN
    put into one gradient makes the scaler's own check skip the step (and halve its scale,
    as after any overflow). Another optimizer cannot skip on the device: it reads the flag
    on the host, one synchronisation per step (zeroing the gradients would not do: AdamW's
    moments would decay and its step count advance)."""
    optimizer, scaler = ctx.optimizer, ctx.scaler
    skip = ((shared[2] + shared[4]) > 0).float()
    if scaler.is_enabled():
        grad = next(p.grad for p in ctx.model.parameters() if p.grad is not None)
        grad.mul_(torch.where(skip > 0, float("nan"), 1.0))
    if ctx.args.clip_grad > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(ctx.model.parameters(), ctx.args.clip_grad)
    if scaler.is_enabled():
        scaler.step(optimizer)
        scaler.update()
    elif all(group.get("fused") for group in optimizer.param_groups):
        optimizer.found_inf = skip
        try:
            optimizer.step()
        finally:
            del optimizer.found_inf
    elif not skip.item():
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)


class StepSync:
    """The steps' all-reduced vectors, kept on the device until the host reads them.

    `add` keeps a step's vector; `read` reads every pending one in one go (the training
    loop's only host synchronisation) and replays the steps on the host, exactly as a read
    per step would: the epoch's sums and skipped steps, a warning per skipped step, the run
    of consecutive non-finite steps (NonFiniteLoss at --max-nonfinite, naming the step), and
    whether some rank asked to stop. It returns the last step's losses and the images per
    second since the previous read.
    """

    def __init__(self, ctx: TrainContext, epoch: int, stats: EpochStats):
        self.ctx, self.epoch, self.stats = ctx, epoch, stats
        self.world = dist.get_world_size()
        self.pending: list[torch.Tensor] = []
        self.images = 0
        self.stop = False
        self.tic = time.perf_counter()

    def add(self, shared: torch.Tensor, images: int) -> None:
        self.pending.append(shared)
        self.images += images

    def read(self) -> tuple[float, float, float]:
        rows = torch.stack(self.pending).tolist() if self.pending else []
        first = self.ctx.global_step - len(rows)  # the global step of rows[0]
        self.pending = []
        toc = time.perf_counter()
        self.stats.images += self.images
        self.stats.seconds += toc - self.tic
        img_per_s = self.images / (toc - self.tic) if toc > self.tic else 0.0
        self.images, self.tic = 0, toc
        world, cls_sum, reg_sum = self.world, float("nan"), float("nan")
        for at, (cls_sum, reg_sum, bad_ranks, stop_ranks, bad_grads) in enumerate(rows, first):
            self.stop = self.stop or bool(stop_ranks)
            if bad_ranks or bad_grads:
                self._skipped(at, bad_ranks, bad_grads)
                continue
            self.ctx.nonfinite_run = 0
            self.stats.loss += (cls_sum + reg_sum) / world
            self.stats.loss_classifier += cls_sum / world
            self.stats.loss_box_reg += reg_sum / world
            self.stats.steps += 1
        return cls_sum / world, reg_sum / world, img_per_s

    def _skipped(self, at: int, bad_ranks: float, bad_grads: float) -> None:
        ctx = self.ctx
        ctx.nonfinite_run += 1
        self.stats.skipped += 1
        what = "loss" if bad_ranks else "gradients"
        log.warning(
            "non-finite %s at step %d (epoch %d) on %d of %d ranks; step skipped on all ranks "
            "(%d in a row)",
            what,
            at,
            self.epoch,
            int(bad_ranks or bad_grads),
            self.world,
            ctx.nonfinite_run,
        )
        if ctx.nonfinite_run >= ctx.args.max_nonfinite:
            raise NonFiniteLoss(
                f"stopping: {ctx.nonfinite_run} consecutive steps with a non-finite loss "
                f"or gradients (--max-nonfinite {ctx.args.max_nonfinite}); last at step {at}"
            )


def to_device(images, targets, device):
    """A batch from the loader on the device: a canvas batch (--input canvas) or lists."""
    if isinstance(images, CanvasImages):
        return images.to(device), targets_to(targets, device)
    images = [img.to(device, non_blocking=True) for img in images]
    targets = [{"boxes": t["boxes"].to(device), "labels": t["labels"].to(device)} for t in targets]
    return images, targets


def batch_len(images) -> int:
    return images.pixels.shape[0] if isinstance(images, CanvasImages) else len(images)


def forward_loss(ctx: TrainContext, images, targets, autocast) -> dict:
    """The two losses of a batch: torchvision's RetinaNet.forward, or (--loss batched) the
    detector's transform, backbone -> head through the DDP module, and the batched loss of
    training/loss.py with fp32 anchors cached per canvas. A canvas batch (--input canvas)
    skips the transform: normalised on the device, already padded, targets already padded."""
    if isinstance(images, CanvasImages):
        detector = ctx.model.module.detector
        canvas = tuple(images.pixels.shape[-2:])
        anchors = ctx.anchors.get(canvas)
        if anchors is None:
            anchors = ctx.anchors[canvas] = canvas_anchors(detector, canvas, ctx.device)
        if ctx.forward_loss is None:  # eager, or one torch.compile graph per canvas
            ctx.forward_loss = ForwardLoss(
                ctx.model,
                ctx.criterion,
                detector.transform.image_mean,
                detector.transform.image_std,
                channels_last=bool(getattr(ctx.args, "channels_last", False)),
                amp_dtype=ctx.amp_dtype,
                compile=bool(getattr(ctx.args, "compile", False)),
            )
        return ctx.forward_loss(images, targets, anchors)
    if ctx.criterion is None:
        with autocast:
            return ctx.model(images, targets)
    detector = ctx.model.module.detector
    image_list, targets = detector.transform(images, targets)
    canvas = tuple(image_list.tensors.shape[-2:])
    anchors = ctx.anchors.get(canvas)
    if anchors is None:
        anchors = ctx.anchors[canvas] = canvas_anchors(detector, canvas, ctx.device)
    with autocast:
        cls_logits, bbox_regression = ctx.model(image_list.tensors)
    return ctx.criterion(cls_logits, bbox_regression, anchors, pad_targets(targets))


def train_one_epoch(ctx: TrainContext, loader, epoch: int, start_step: int, steps: int, stats):
    """Train from `start_step` to the end of the epoch; return the step reached and whether a
    stop was requested (the caller then checkpoints at that step). The host reads the steps'
    losses and flags at every --log-every and --sync-every step and at the epoch's end only
    (StepSync), so a stop request takes effect there, on every rank at the same step."""
    args, device = ctx.args, ctx.device
    rank, world = dist.get_rank(), dist.get_world_size()
    ctx.model.train()
    bar = None
    if rank == 0 and _show_bar(args.progress):
        bar = tqdm(total=steps, initial=start_step, desc=f"epoch {epoch}", dynamic_ncols=True)
    step, sync = start_step, StepSync(ctx, epoch, stats)
    autocast = (
        torch.autocast(device.type, dtype=ctx.amp_dtype)
        if ctx.amp_dtype
        else contextlib.nullcontext()
    )
    for images, targets in loader:
        images, targets = to_device(images, targets, device)
        loss_dict = forward_loss(ctx, images, targets, autocast)
        loss_cls, loss_reg = loss_dict["classification"], loss_dict["bbox_regression"]
        loss = loss_cls + loss_reg
        if ctx.global_step in ctx.inject:
            loss = loss * float("nan")
        ctx.scaler.scale(loss).backward()  # every rank, always: DDP all-reduces the gradients
        shared = shared_flags(ctx, loss_cls, loss_reg, loss)
        optimizer_step(ctx, shared)
        ctx.lr_scheduler.step()
        sync.add(shared, batch_len(images) * world)
        step += 1
        ctx.global_step += 1
        logging_step = step % args.log_every == 0 or step == steps
        if not (logging_step or step % args.sync_every == 0):
            continue
        cls_loss, reg_loss, img_per_s = sync.read()
        loss_value, lr = cls_loss + reg_loss, ctx.optimizer.param_groups[0]["lr"]
        if bar is not None:
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}", img_s=f"{img_per_s:.1f}")
            bar.update(step - bar.n)
        if rank == 0 and logging_step:
            if bar is None:
                log.info(
                    "epoch %d step %d/%d loss %.4f (cls %.4f box %.4f) lr %.2e %.1f img/s",
                    epoch,
                    step,
                    steps,
                    loss_value,
                    cls_loss,
                    reg_loss,
                    lr,
                    img_per_s,
                )
            if ctx.writer is not None and math.isfinite(loss_value):
                ctx.writer.add_scalar("train/loss", loss_value, ctx.global_step)
                ctx.writer.add_scalar("train/loss_classifier", cls_loss, ctx.global_step)
                ctx.writer.add_scalar("train/loss_box_reg", reg_loss, ctx.global_step)
                ctx.writer.add_scalar("train/lr", lr, ctx.global_step)
                ctx.writer.add_scalar("train/img_per_s", img_per_s, ctx.global_step)
        if sync.stop:
            break
    sync.read()  # a loader shorter than `steps`: the steps after the last read
    if bar is not None:
        bar.close()
    return step, sync.stop


@torch.inference_mode()
def predict_shard(model, loader, device, stop: StopFlag | None = None, progress: str = "auto"):
    """This rank's detections, boxes in original image coordinates (x, y, w, h).

    The model's transform, backbone and head, then one batched post-processing per batch
    (training/postprocess.py: torchvision's detections up to ties, without its per-image loop).

    Returns None on every rank when some rank was asked to stop (checked once per batch).
    Rank 0 shows progress: a bar on a terminal, else a log line every tenth of the pass
    with the time left.
    """
    model.eval()
    results = []
    total = len(loader)
    show = dist.get_rank() == 0 and total > 0
    bar = (
        tqdm(total=total, desc="evaluate", dynamic_ncols=True)
        if show and _show_bar(progress)
        else None
    )
    every = max(1, total // 10)
    tic = time.perf_counter()
    anchors: dict = {}  # fp32 anchors per canvas, for the batched post-processing
    for n, (images, targets) in enumerate(loader, 1):
        if stop is not None:
            flag = torch.tensor([float(stop.requested)], device=device)
            dist.all_reduce(flag)
            if flag.item():
                if bar is not None:
                    bar.close()
                return None
        outputs = detect(model, [img.to(device) for img in images], anchors)
        for out, t in zip(outputs, targets, strict=True):
            sx, sy = t["scale"]
            boxes = out["boxes"].float().cpu() / torch.tensor([sx, sy, sx, sy])
            boxes[:, 2:] -= boxes[:, :2]
            results.append(
                (
                    t["image_id"],
                    boxes.numpy(),
                    out["scores"].float().cpu().numpy(),
                    out["labels"].cpu().numpy(),
                )
            )
        if bar is not None:
            bar.update()
        elif show and (n % every == 0 or n == total):
            spent = time.perf_counter() - tic
            log.info(
                "evaluate batch %d/%d, %.1f s, about %.0f s left",
                n,
                total,
                spent,
                spent / n * (total - n),
            )
    if bar is not None:
        bar.close()
    return results


def evaluate(
    model, loader, device, dataset, stop: StopFlag | None = None, progress="auto", out=None
):
    """COCO mAP on the validation split. Every rank predicts its shard; rank 0 gathers the
    detections, drops the duplicates that the sampler's padding produced, and scores them.

    Returns the twelve COCO numbers on rank 0, [] on other ranks, None on every rank if
    interrupted (during prediction, or during rank 0's scoring: see the module docstring).
    When `out` is a dict, rank 0 also puts there the "detections" (COCO results format) and
    the "coco_eval" (pycocotools' COCOeval, with its precision-recall table).
    """
    was_training = model.training
    results = predict_shard(model, loader, device, stop, progress)
    model.train(was_training)
    if results is None:
        return None
    gathered = du.gather_to_main(results)
    stats = None
    if dist.get_rank() == 0:
        if stop is None:
            stats = _score(gathered, dataset, out)
        else:
            try:
                with stop.interrupting():
                    stats = _score(gathered, dataset, out)
            except StopRequested:
                stats = None
    if stop is not None:  # every rank learns whether rank 0 was stopped
        flag = torch.tensor([float(dist.get_rank() == 0 and stats is None)], device=device)
        dist.all_reduce(flag)
        if flag.item():
            return None
    return stats if dist.get_rank() == 0 else []


def _score(gathered, dataset, out):
    """Rank 0: the gathered detections, deduplicated, scored with pycocotools."""
    by_image = {}
    for part in gathered:
        for image_id, boxes, scores, labels in part:
            by_image.setdefault(image_id, (boxes, scores, labels))  # first copy wins
    detections = []
    for image_id, (boxes, scores, labels) in sorted(by_image.items()):
        for box, score, label in zip(boxes.tolist(), scores.tolist(), labels.tolist(), strict=True):
            detections.append(
                {
                    "image_id": image_id,
                    "category_id": dataset.category_ids[label],
                    "bbox": box,
                    "score": score,
                }
            )
    if slow := float(os.environ.get("TRAINING_TEST_SLOW_SCORING", "0") or 0):
        print("TRAINING_TEST_SLOW_SCORING: scoring", file=sys.stderr, flush=True)
        time.sleep(slow)
    if out is None:
        return coco_stats(dataset.coco_gt(), detections)
    out["detections"] = detections
    stats, out["coco_eval"] = coco_stats(dataset.coco_gt(), detections, keep_eval=True)
    return stats
