"""Process group, per-rank logging and the few collectives the job needs.

Every collective here is called by all ranks in the same order; the helpers that let rank 0
do something alone (`on_rank0`) share its outcome, error included, so that a failure on one
rank ends every rank with the same message instead of a hang.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from .errors import UsageError

log = logging.getLogger("training")


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0


class SharedError(RuntimeError):
    """An error raised on one rank and re-raised, with the same message, on every rank."""


def setup_logging(rank: int, world_size: int) -> None:
    """Rank 0 logs INFO and up; other ranks log warnings and errors only, each line tagged."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(
            f"%(asctime)s [rank {rank}/{world_size}] %(levelname)s %(message)s", "%H:%M:%S"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    log.setLevel(logging.INFO if rank == 0 else logging.WARNING)


def free_port() -> int:
    """A TCP port free on this host now (for a one-process group without torchrun)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_distributed(device: str | None = None, backend: str | None = None) -> DistInfo:
    """Seed step 1: the process group from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK).

    Started without torchrun (`python -m training`), it forms a one-process group on a free
    local port so that the same code path (DDP included) runs.
    """
    if "RANK" not in os.environ:
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(free_port()))
    rank = int(os.environ["RANK"])
    world_size = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    setup_logging(rank, world_size)

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(
                "--device cuda: no CUDA GPU is visible to this process (use --device cpu, or "
                "check nvidia-smi and CUDA_VISIBLE_DEVICES)"
            )
        if local_rank >= torch.cuda.device_count():
            raise UsageError(
                f"LOCAL_RANK {local_rank}: this node has {torch.cuda.device_count()} visible "
                "GPU(s); start at most that many processes per node (--nproc-per-node)"
            )
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    backend = backend or ("nccl" if dev.type == "cuda" else "gloo")

    dist.init_process_group(
        backend=backend,
        init_method="env://",
        rank=rank,
        world_size=world_size,
        device_id=dev if backend == "nccl" else None,
    )
    barrier(dev)
    info = DistInfo(rank, world_size, local_rank, dev, backend)
    log.info(
        "RANK %d WORLD_SIZE %d LOCAL_RANK %d backend %s device %s",
        rank,
        world_size,
        local_rank,
        backend,
        dev,
    )
    return info


def barrier(device: torch.device | None = None) -> None:
    if device is not None and device.type == "cuda":
        dist.barrier(device_ids=[device.index])
    else:
        dist.barrier()


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_gather(obj: Any) -> list[Any]:
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def gather_to_main(obj: Any) -> list[Any] | None:
    """Every rank's `obj`, as a list on rank 0 (None elsewhere)."""
    out: list[Any] | None = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def broadcast(obj: Any) -> Any:
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def on_rank0(fn: Callable[[], Any]) -> Any:
    """Run `fn` on rank 0 only and return its result on every rank.

    If `fn` raises, every rank raises with rank 0's message (UsageError for a user mistake,
    SharedError otherwise), so no rank waits in a later collective for a peer that has gone.
    """
    result, error, usage = None, None, False
    if dist.get_rank() == 0:
        try:
            result = fn()
        except UsageError as exc:
            error, usage = str(exc), True
        except Exception as exc:  # shared with every rank below
            error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, SharedError) else str(exc)
    result, error, usage = broadcast((result, error, usage))
    if error is not None:
        raise UsageError(error) if usage else SharedError(error)
    return result
