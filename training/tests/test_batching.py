"""Aspect-ratio grouping over the whole world (training/batching.py), without processes."""

from __future__ import annotations

import numpy as np

from training.batching import GroupedBatchSampler


def epoch_batches(buckets, epoch, world=2, batch=4, seed=0, start=0):
    out = []
    for rank in range(world):
        s = GroupedBatchSampler(buckets, batch, world, rank, seed)
        s.set_epoch(epoch, start)
        out.append(list(s))
        assert len(out[-1]) == len(s)
    return out


def test_each_step_is_one_bucket_on_every_rank_and_no_image_twice():
    rng = np.random.default_rng(0)
    buckets = rng.integers(0, 3, 103)
    ranks = epoch_batches(buckets, epoch=0)
    assert len(ranks[0]) == len(ranks[1]) > 0
    seen = []
    for step in zip(*ranks, strict=True):
        indices = [i for batch in step for _, i in batch]
        assert len({int(buckets[i]) for i in indices}) == 1  # one canvas for the whole step
        assert all(len(b) == 4 for b in step)
        seen += indices
    assert len(seen) == len(set(seen))
    counts = np.bincount(buckets)
    assert len(seen) == sum(c // 8 * 8 for c in counts)  # whole global batches per bucket
    assert {e for batch in ranks[0] for e, _ in batch} == {0}  # the epoch travels with items


def test_order_is_deterministic_per_seed_and_epoch_and_resume_skips_the_trained_batches():
    buckets = np.arange(64) % 2
    a, b = epoch_batches(buckets, 3), epoch_batches(buckets, 3)
    assert a == b
    assert epoch_batches(buckets, 4) != a
    assert epoch_batches(buckets, 3, seed=1) != a
    resumed = epoch_batches(buckets, 3, start=2 * 4)  # two steps of 4 samples done
    assert [r[2:] for r in a] == resumed
    s = GroupedBatchSampler(buckets, 4, 2, 0)
    assert s.num_samples == len(a[0]) * 4 == 64 // 2


def test_one_bucket_gives_distributed_sampler_and_batch_sampler_batches():
    """Square images (one canvas): the seed's DistributedSampler(shuffle=True) +
    BatchSampler(drop_last=True) batches, rank by rank, so runs compare step by step."""
    from torch.utils.data import BatchSampler, DistributedSampler

    data = list(range(40))
    for epoch in (0, 5):
        for rank in range(2):
            ref = DistributedSampler(data, num_replicas=2, rank=rank, shuffle=True, seed=7)
            ref.set_epoch(epoch)
            ours = GroupedBatchSampler(np.zeros(40), 4, 2, rank, seed=7)
            ours.set_epoch(epoch)
            expected = [[(epoch, i) for i in b] for b in BatchSampler(ref, 4, drop_last=True)]
            assert list(ours) == expected
