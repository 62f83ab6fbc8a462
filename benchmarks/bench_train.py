"""End-to-end training step: the seed's recipe against this project's default, one process.

Both recipes train from the same COCO-format JPEG dataset that this script writes to a
temporary folder (so decoding, resizing and loading are in the numbers), through the job's
own loader, model, DDP wrapper (a one-process group) and optimizer:

  (a) seed: fp32, SyncBatchNorm on GPUs, find_unused_parameters=True, torchvision's loss;
  (b) default: the job's defaults for the device (`--loss batched`, `--input canvas`:
      uint8 from the workers, fixed canvases, normalisation on the device; find_unused
      off), plus on GPUs `--amp --channels-last` (bf16 where native);
  (c) on GPUs only: (b) + `--compile` (forward + loss compiled; compilation in the warmup).

It prints images per second, the ratio (b)/(a), peak memory, the time split per step (data
wait, forward, loss, backward, optimizer) and the host synchronisations of one step (ops
that wait for the device, counted with training/opcount.py; data loading excluded). Each
step ends as the job's does (engine.py): one all-reduce of the losses and flags, and the
optimizer step skipped on the device where they are non-finite; the job reads those flags
every --log-every steps, which the count leaves out (a step between reads is counted).
Phases are timed with a device synchronisation at each boundary, so the split adds a few
syncs of its own that the counted step does not have. With torchvision's loss the loss runs
inside the model's forward and is reported there, and so is the loss under --compile (one
graph).

    python benchmarks/bench_train.py                 # CPU, small (about 2 minutes on 2 cores)
    python benchmarks/bench_train.py --json out.json # also write every number as JSON
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training import distributed as du  # noqa: E402
from training import recipe  # noqa: E402
from training.anchors import canvas_anchors  # noqa: E402
from training.canvas import CanvasImages, channel_constants, normalise  # noqa: E402
from training.compiled import ForwardLoss  # noqa: E402
from training.config import get_args_parser, parse_args, resolve_defaults  # noqa: E402
from training.data import build_dataset, train_loader  # noqa: E402
from training.data.synthetic import SyntheticDataset  # noqa: E402
from training.engine import (  # noqa: E402
    StopFlag,
    TrainContext,
    batch_len,
    optimizer_step,
    shared_flags,
    to_device,
)
from training.loss import RetinaNetLoss, pad_targets  # noqa: E402
from training.model import build_model  # noqa: E402
from training.opcount import OpRecorder  # noqa: E402

RECIPES = {
    "cpu": {
        "(a) seed: fp32, find_unused, torchvision loss": [
            "--find-unused-parameters",
            "--loss=torchvision",
        ],
        "(b) default": [],
    },
    "cuda": {
        "(a) seed: fp32, SyncBN, find_unused, torchvision loss": [
            "--find-unused-parameters",
            "--loss=torchvision",
            "--sync-bn",
        ],
        "(b) default + --amp --channels-last": ["--amp", "--channels-last"],
        "(c) default + --amp --channels-last --compile": ["--amp", "--channels-last", "--compile"],
    },
}
PHASES = ("data", "forward", "loss", "backward", "optimizer")


def write_coco(root: Path, n: int, size: int) -> Path:
    """n synthetic images as JPEG files and their boxes as a COCO annotation file."""
    data = SyntheticDataset(n, size, "train", seed=0)
    images, annotations = [], []
    for i, rec in enumerate(data.records):
        name = f"{i:05d}.jpg"
        data.load_image(i).save(root / name, quality=90)
        images.append({"id": i + 1, "file_name": name, "width": size, "height": size})
        for (x1, y1, x2, y2), label in zip(rec.boxes.tolist(), rec.labels.tolist(), strict=True):
            w, h = x2 - x1, y2 - y1
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": data.category_ids[label],
                    "bbox": [x1, y1, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    cats = [{"id": c, "name": n} for c, n in zip(data.category_ids, data.class_names, strict=True)]
    ann = root / "train.json"
    ann.write_text(json.dumps({"images": images, "annotations": annotations, "categories": cats}))
    return ann


class Recipe:
    """The job's objects for one set of flags (model, DDP, optimizer, loader)."""

    def __init__(self, flags: list[str], common: list[str], device: torch.device):
        self.args = args = parse_args(get_args_parser(), [*common, *flags])
        resolve_defaults(args, device.type, 1)
        info = du.DistInfo(0, 1, 0, device, dist.get_backend())
        self.device = device
        dataset = build_dataset(args, "train")
        self.loader, self.sampler, _ = train_loader(dataset, args, info)
        torch.manual_seed(0)
        detector = build_model(args.backbone, dataset.num_classes, args.image_size)
        detector.to(device)
        if args.channels_last:
            detector.to(memory_format=torch.channels_last)
        self.model = recipe.wrap_model(recipe.TrainForward(detector), args, info)
        self.detector = self.model.module.detector
        self.optimizer = recipe.build_optimizer(self.detector, args)
        self.dtype = recipe.amp_dtype(args, device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.dtype == torch.float16)
        self.criterion = RetinaNetLoss.from_model(self.detector) if args.loss == "batched" else None
        # The job's step after backward: the all-reduced losses and flags, the optimizer
        # step skipped on the device where they say so (engine.optimizer_step).
        self.ctx = TrainContext(
            self.model, self.optimizer, None, self.scaler, device, self.dtype, args, StopFlag()
        )
        self.anchors: dict = {}
        mean_std = (self.detector.transform.image_mean, self.detector.transform.image_std)
        self.norm = channel_constants(*mean_std, device)  # once: no host copy per step
        if args.compile:
            self.compiled = ForwardLoss(
                self.model, self.criterion, *mean_std, args.channels_last, self.dtype, True
            )

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def step(self, images, targets, times: dict | None) -> None:
        clock = time.perf_counter
        autocast = torch.autocast(self.device.type, self.dtype, enabled=self.dtype is not None)
        t = clock()

        def mark(phase):
            nonlocal t
            if times is not None:
                self._sync()
                now = clock()
                times[phase] += now - t
                t = now

        if self.criterion is None:
            with autocast:
                losses = self.model(images, targets)
            mark("forward")
        elif isinstance(images, CanvasImages):
            canvas = tuple(images.pixels.shape[-2:])
            if canvas not in self.anchors:
                self.anchors[canvas] = canvas_anchors(self.detector, canvas, self.device)
            if self.args.compile:
                losses = self.compiled(images, targets, self.anchors[canvas])
                mark("forward")
            else:
                pixels = normalise(images, *self.norm, channels_last=self.args.channels_last)
                with autocast:
                    cls_logits, bbox_regression = self.model(pixels)
                mark("forward")
                losses = self.criterion(cls_logits, bbox_regression, self.anchors[canvas], targets)
                mark("loss")
        else:
            image_list, targets = self.detector.transform(images, targets)
            canvas = tuple(image_list.tensors.shape[-2:])
            if canvas not in self.anchors:
                self.anchors[canvas] = canvas_anchors(self.detector, canvas, self.device)
            tensors = image_list.tensors
            if self.args.channels_last:
                tensors = tensors.contiguous(memory_format=torch.channels_last)
            with autocast:
                cls_logits, bbox_regression = self.model(tensors)
            mark("forward")
            padded = pad_targets(targets)
            losses = self.criterion(cls_logits, bbox_regression, self.anchors[canvas], padded)
            mark("loss")
        loss_cls, loss_reg = losses["classification"], losses["bbox_regression"]
        loss = loss_cls + loss_reg
        self.scaler.scale(loss).backward()
        mark("backward")
        optimizer_step(self.ctx, shared_flags(self.ctx, loss_cls, loss_reg, loss))
        mark("optimizer")

    def batches(self):
        epoch = 0
        while True:
            self.sampler.set_epoch(epoch)
            for images, targets in self.loader:
                yield to_device(images, targets, self.device)
            epoch += 1


def measure(name, flags, common, device, warmup: int, steps: int) -> dict:
    recipe = Recipe(flags, common, device)
    batches = recipe.batches()
    for _ in range(warmup):
        recipe.step(*next(batches), None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = dict.fromkeys(PHASES, 0.0)
    images = 0
    recipe._sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        tic = time.perf_counter()
        batch = next(batches)
        recipe._sync()
        times["data"] += time.perf_counter() - tic
        recipe.step(*batch, times)
        images += batch_len(batch[0])
    wall = time.perf_counter() - t0
    try:
        with OpRecorder() as rec:
            recipe.step(*next(batches), None)
        syncs = dict(rec.syncs)
    except Exception as exc:  # a compiled step may refuse to run under a dispatch mode
        print(f"    (host syncs not counted: {type(exc).__name__}: {exc})", flush=True)
        syncs = None
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:  # the process's high-water mark so far (Linux: KiB)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "recipe": name,
        "flags": flags,
        "img_per_s": images / wall,
        "peak_mib": peak,
        "ms_per_step": {k: 1000 * v / steps for k, v in times.items()},
        "host_syncs_per_step": None if syncs is None else sum(syncs.values()),
        "syncs": syncs,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available")
    p.add_argument("--image-size", type=int, help="default: 128 on cpu, 512 on cuda")
    p.add_argument("--batch-size", type=int, help="images per step (cpu 8, cuda 16)")
    p.add_argument("--steps", type=int, help="timed steps per recipe (cpu 16, cuda 30)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--workers", type=int, help="loader workers (cpu 1, cuda 6)")
    p.add_argument("--only", choices=["a", "b", "c"], help="one recipe (gpu_check.sh's parts)")
    p.add_argument("--json", metavar="PATH", help="write the numbers here too")
    a = p.parse_args()
    device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = device.type == "cuda"
    size = a.image_size or (512 if cuda else 128)
    batch = a.batch_size or (16 if cuda else 8)
    steps = a.steps or (30 if cuda else 16)
    workers = a.workers if a.workers is not None else (6 if cuda else 1)
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(du.free_port()))
    dist.init_process_group("nccl" if cuda else "gloo", rank=0, world_size=1)
    if cuda:
        torch.cuda.set_device(0)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        n = batch * (a.warmup + steps + 1)
        t = time.perf_counter()
        ann = write_coco(root, n, size)
        print(f"wrote {n} JPEG images of {size} px in {time.perf_counter() - t:.1f} s", flush=True)
        common = [
            f"--device={device.type}",
            "--dataset=coco",
            f"--train-ann={ann}",
            f"--train-images={root}",
            f"--image-size={size}",
            f"--batch-size={batch}",
            f"--workers={workers}",
        ]
        what = torch.cuda.get_device_name(0) if cuda else f"{os.cpu_count()} CPU cores"
        print(f"one process on {what}; batch {batch}, {size} px, {steps} timed steps", flush=True)
        recipes = list(RECIPES[device.type].items())
        if a.only:
            if "abc".index(a.only) >= len(recipes):
                p.error(f"--only {a.only}: no such recipe on {device.type}")
            recipes = [recipes["abc".index(a.only)]]
        for name, flags in recipes:
            results.append(measure(name, flags, common, device, a.warmup, steps))
            r = results[-1]
            split = "  ".join(f"{k} {v:.0f}" for k, v in r["ms_per_step"].items())
            print(
                f"{name}\n    {r['img_per_s']:.1f} img/s  peak {r['peak_mib']:.0f} MiB  "
                f"host syncs/step {r['host_syncs_per_step']}\n    ms/step: {split}",
                flush=True,
            )
    out = {"device": what, "image_size": size, "batch": batch, "steps": steps, "runs": results}
    for key, r in zip("bc", results[1:], strict=False):
        if a.only is None:
            out[f"ratio_{key}_over_a"] = r["img_per_s"] / results[0]["img_per_s"]
            print(f"ratio ({key})/(a): {out[f'ratio_{key}_over_a']:.2f}x")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
