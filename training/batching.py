"""Aspect-ratio grouping for DDP: every step's batch comes from one canvas bucket.

torchvision's references group by aspect ratio with a GroupedBatchSampler on top of a
DistributedSampler, so each rank groups its own shard and the ranks may sit on different
shapes at the same step. Here the grouping is done for the whole world at once. The epoch's
permutation is DistributedSampler's (torch.randperm seeded with seed + epoch, the same on
every rank); walking it, each bucket collects images and emits a global batch of
`batch_size x world` images when it fills (torchvision's GroupedBatchSampler's rule), and
rank r takes every world-th image of it, from the r-th on. So at every step all ranks train
on the same canvas (one compiled graph per canvas, the same shapes in DDP's buckets), each
image is used at most once per epoch, the images that do not fill a last global batch of
their bucket sit out that epoch (drop_last, per bucket), and with a single bucket (square
images) the batches are exactly DistributedSampler + BatchSampler(drop_last=True)'s.

Items are (epoch, index), as `data.EpochSampler`'s, so augmentation depends on the epoch;
`set_epoch(epoch, start)` skips the `start` samples this rank trained on before a mid-epoch
checkpoint.

    sampler = GroupedBatchSampler(buckets, batch_size=8, num_replicas=2, rank=0, seed=0)
    sampler.set_epoch(3)
    for batch in sampler: ...  # [(3, i), ...] of 8 indices from one bucket
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Sampler


class GroupedBatchSampler(Sampler):
    def __init__(self, buckets, batch_size: int, num_replicas: int, rank: int, seed: int = 0):
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
        if batch_size < 1:
            raise ValueError(f"batch_size {batch_size} is not positive")
        self.buckets = np.asarray(buckets, np.int64).reshape(-1)
        self.batch_size, self.num_replicas, self.rank = batch_size, num_replicas, rank
        self.seed, self.epoch, self.start = seed, 0, 0
        world_batch = batch_size * num_replicas
        counts = np.bincount(self.buckets) if len(self.buckets) else np.zeros(0, np.int64)
        self.num_batches = int((counts // world_batch).sum())  # the same every epoch

    @property
    def num_samples(self) -> int:
        """Samples this rank sees in a whole epoch (as DistributedSampler.num_samples)."""
        return self.num_batches * self.batch_size

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def global_batches(self) -> list[np.ndarray]:
        """This epoch's global batches (every rank's images), in training order."""
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.buckets), generator=g).numpy()
        world_batch = self.batch_size * self.num_replicas
        batches, filled_at = [], []
        for bucket in np.unique(self.buckets):
            where = np.flatnonzero(self.buckets[order] == bucket)  # positions in the walk
            for start in range(0, len(where) - world_batch + 1, world_batch):
                batches.append(order[where[start : start + world_batch]])
                filled_at.append(where[start + world_batch - 1])
        return [batches[i] for i in np.argsort(filled_at, kind="stable")]

    def __iter__(self):
        skip = self.start // self.batch_size
        for batch in self.global_batches()[skip:]:
            yield [(self.epoch, int(i)) for i in batch[self.rank :: self.num_replicas]]

    def __len__(self) -> int:
        return max(0, self.num_batches - self.start // self.batch_size)
