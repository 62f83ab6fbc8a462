"""Datasets (synthetic, coco, csv), the bad-data check shared by all ranks, and the loaders."""

from __future__ import annotations

import logging
import signal

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler

from .. import distributed as du
from ..batching import GroupedBatchSampler
from ..canvas import CanvasCollate, assign_canvases, canvas_multiple, choose_canvases, resized_sizes
from .base import DataError, DetectionDataset, Issue, collate
from .coco import CocoDataset
from .csv_format import CsvDataset
from .synthetic import SyntheticDataset

__all__ = [
    "DataError",
    "DetectionDataset",
    "build_dataset",
    "check_data",
    "collate",
    "train_loader",
    "val_loader",
]

log = logging.getLogger("training")


def build_dataset(args, split: str) -> DetectionDataset:
    """The `split` ("train" or "val") dataset from the flags; reads annotations, not images."""
    train = split == "train"
    if args.dataset == "synthetic":
        size = args.train_size if train else args.val_size
        return SyntheticDataset(size, args.image_size, split, args.seed)
    if args.dataset == "coco":
        need = {f"--{split}-ann": getattr(args, f"{split}_ann")}
        need[f"--{split}-images"] = getattr(args, f"{split}_images")
        if missing := [k for k, v in need.items() if not v]:
            raise DataError(f"--dataset coco needs {', '.join(missing)}")
        return CocoDataset(*need.values(), args.image_size, train, args.seed)
    if args.dataset == "csv":
        need = {f"--{split}-csv": getattr(args, f"{split}_csv"), "--classes-csv": args.classes_csv}
        if missing := [k for k, v in need.items() if not v]:
            raise DataError(f"--dataset csv needs {', '.join(missing)}")
        return CsvDataset(*need.values(), args.image_size, train, args.seed)
    raise DataError(f"unknown dataset {args.dataset!r}")


def check_data(*datasets: DetectionDataset) -> None:
    """Raise the same DataError on every rank if any rank finds bad data.

    Annotation problems are found by every rank alike; image headers are split over the
    ranks (rank r opens images r, r+W, ...) and the findings are gathered, so that the
    report, and the decision to stop, are identical everywhere.
    """
    rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    issues: list[Issue] = []
    for ds in datasets:
        issues += ds.issues
        issues += ds.check_images(range(rank, len(ds), world))
    merged = sorted({i for part in du.all_gather(issues) for i in part})
    if merged:
        raise DataError.from_issues(merged)
    for ds in datasets:
        if ds.num_classes == 0:
            raise DataError(f"{ds.name} dataset lists no classes")
        if len(ds) == 0:
            raise DataError(f"{ds.name} dataset has no images")


def _ignore_stop_signals(_worker_id: int) -> None:
    # `systemctl stop` signals the whole control group, Ctrl-C the whole process group. Loader
    # workers ignore SIGTERM and SIGINT so that the main process can finish its step and
    # checkpoint; it shuts them down itself.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class EpochSampler(DistributedSampler):
    """DistributedSampler that yields (epoch, index) and can start part-way into an epoch.

    The epoch travels with each index so that augmentation depends on it; `start` skips the
    samples this rank already trained on before a mid-epoch checkpoint.
    """

    def __init__(self, dataset, seed: int):
        super().__init__(dataset, shuffle=True, seed=seed, drop_last=False)
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        super().set_epoch(epoch)
        self.start = start

    def __iter__(self):
        indices = list(super().__iter__())[self.start :]
        return iter([(self.epoch, i) for i in indices])

    def __len__(self) -> int:
        return self.num_samples - self.start


def _loader_kwargs(args, device) -> dict:
    workers = args.workers
    return {
        "num_workers": workers,
        "collate_fn": collate,
        "pin_memory": device.type == "cuda",
        "worker_init_fn": _ignore_stop_signals if workers > 0 else None,
        # Workers stay between epochs (no re-fork, no second copy of the dataset each epoch).
        "persistent_workers": workers > 0,
    }


def train_loader(dataset, args, info) -> tuple[DataLoader, EpochSampler, int]:
    """Seed step 2: DistributedSampler(shuffle=True) and per-process batch = global / world."""
    if args.batch_size % info.world_size:
        raise DataError(
            f"--batch-size {args.batch_size} (global) is not divisible by the "
            f"{info.world_size} processes: use a multiple of {info.world_size}"
        )
    per_rank = args.batch_size // info.world_size
    sampler = EpochSampler(dataset, seed=args.seed)
    if sampler.num_samples < per_rank:
        raise DataError(
            f"{len(dataset)} training images give each of {info.world_size} processes fewer "
            f"than one batch of {per_rank}"
        )
    if getattr(args, "input", "transform") == "canvas":
        return _canvas_loader(dataset, args, info, per_rank)
    batches = BatchSampler(sampler, per_rank, drop_last=True)
    loader = DataLoader(dataset, batch_sampler=batches, **_loader_kwargs(args, info.device))
    return loader, sampler, per_rank


def _canvas_loader(dataset, args, info, per_rank: int):
    """--input canvas: uint8 items, batches of one aspect-ratio bucket padded to its fixed
    canvas (training/canvas.py), grouped for the whole world (training/batching.py)."""
    sizes = resized_sizes(dataset.image_sizes(), args.image_size)
    canvases = choose_canvases(sizes, canvas_multiple(args.image_size))
    buckets = assign_canvases(sizes, canvases)
    sampler = GroupedBatchSampler(buckets, per_rank, info.world_size, info.rank, args.seed)
    if sampler.num_batches == 0:
        raise DataError(
            f"{len(dataset)} training images fill no batch of {per_rank} x {info.world_size} "
            f"processes in any of the canvases {canvases}: use a smaller --batch-size"
        )
    counts = np.bincount(buckets, minlength=len(canvases))
    log.info(
        "canvas input: %s; %d of %d images per epoch (whole global batches per canvas)",
        ", ".join(f"{h}x{w} ({n} images)" for (h, w), n in zip(canvases, counts, strict=True)),
        sampler.num_batches * per_rank * info.world_size,
        len(dataset),
    )
    dataset.uint8 = True
    kwargs = _loader_kwargs(args, info.device)
    kwargs["collate_fn"] = CanvasCollate(canvases, dataset.records.max_boxes())
    loader = DataLoader(dataset, batch_sampler=sampler, **kwargs)
    return loader, sampler, per_rank


def val_loader(dataset, args, info) -> DataLoader:
    """Validation: no shuffling; the padding DistributedSampler adds is removed after gathering."""
    sampler = DistributedSampler(dataset, shuffle=False, drop_last=False)
    per_rank = max(1, args.batch_size // info.world_size)
    return DataLoader(
        dataset, batch_size=per_rank, sampler=sampler, **_loader_kwargs(args, info.device)
    )
