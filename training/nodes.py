"""A resume checkpoint on every node, and the agreement on which one a launch resumes from.

Seed step 5 stays: rank 0 alone writes `model_{epoch}.pt`, `model_best.pt`, `metrics.jsonl`
and TensorBoard. The resume checkpoint (`checkpoint.pt`, and `checkpoint_prev.pt` before it)
is written by the first process of every node (LOCAL_RANK 0) into that node's own
`--output-dir`, so that losing any node, rank 0's included, loses no checkpoint. DDP keeps
the parameters and the optimizer identical on every rank; the rest is made identical before a
save (rank 0's BatchNorm buffers, its epoch sums, best mAP, clock and flags), so every node's
copy is the same state with the same digest. With `--shared-output-dir` (one folder on a
shared file system, seen by every node) only rank 0 writes, as the seed does.

On start with `--resume auto`, the first process of every node checks its own folder and reads
its newest valid checkpoint (checkpoint.pt, else checkpoint_prev.pt; see checkpoint.py). One
all-gather of (epoch, step, digest) agrees on the newest checkpoint any node holds (a tie goes
to the lowest rank); its holder broadcasts it to every rank, and each node that held none, an
older one, a corrupt one or a different one at the same step writes it at once (its own copy
becomes checkpoint_prev.pt) and says so at WARNING. So a launch that finds a checkpoint on
any node never starts from scratch, and one that finds none says so at WARNING.

Nodes are named `node G (HOST:DIR)`: G is torchrun's GROUP_RANK, which a new rendezvous may
assign differently, so the host and folder say which machine it is.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass

import torch
import torch.distributed as dist

from . import checkpoint as ckpt
from . import distributed as du
from . import run_dir
from .errors import UsageError

log = logging.getLogger("training")

PROBE = ".node-probe."


@dataclass(frozen=True)
class Node:
    """This process's node, from torchrun's environment."""

    index: int  # GROUP_RANK
    count: int  # GROUP_WORLD_SIZE
    host: str
    output_dir: str
    writes: bool  # this process keeps the node's checkpoint.pt

    def __str__(self) -> str:
        return f"node {self.index} ({self.host}:{os.path.abspath(self.output_dir)})"


def this_node(args, info: du.DistInfo) -> Node:
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    count = int(os.environ.get("GROUP_WORLD_SIZE", "0") or 0) or max(
        1, info.world_size // max(1, local_world)
    )
    writes = info.is_main if args.shared_output_dir else info.local_rank == 0
    index = int(os.environ.get("GROUP_RANK", "0") or 0)
    return Node(index, count, socket.gethostname(), args.output_dir, writes)


def several_write(args, node: Node) -> bool:
    """More than one process writes checkpoint.pt (one per node)."""
    return node.count > 1 and not args.shared_output_dir


def on_writers(node: Node, fn):
    """Run `fn` on the processes that write checkpoints and return its result there (None
    elsewhere); when it fails on any of them, every rank raises the first failure's message."""
    result, error, usage = None, None, False
    if node.writes:
        try:
            result = fn()
        except UsageError as exc:
            error, usage = str(exc), True
        except Exception as exc:  # shared with every rank below
            error = str(exc) if isinstance(exc, du.SharedError) else f"{type(exc).__name__}: {exc}"
    for err, is_usage in du.all_gather((error, usage)):
        if err is not None:
            raise UsageError(err) if is_usage else du.SharedError(err)
    return result


def check_not_shared(args, node: Node) -> None:
    """Refuse two nodes whose --output-dir is one folder without --shared-output-dir: their
    checkpoint rotations would race. Each writer drops a probe file and looks for the others'
    (best effort: a network file system may show a new file to other clients late)."""
    if not several_write(args, node):
        return
    token = uuid.uuid4().hex if node.writes else None
    probe = os.path.join(args.output_dir, PROBE + (token or ""))

    def drop():
        os.makedirs(args.output_dir, exist_ok=True)
        with open(probe, "w") as f:
            f.write(str(node))

    on_writers(node, drop)
    tokens = du.all_gather((token, str(node)))
    seen = []
    if node.writes:
        for other, name in tokens:
            if (
                other
                and other != token
                and os.path.exists(os.path.join(args.output_dir, PROBE + other))
            ):
                seen.append(name)
    shared = du.all_gather((str(node), seen))
    if node.writes:
        os.remove(probe)
    for name, others in shared:
        if others:
            raise UsageError(
                f"--output-dir: {name} and {others[0]} write to the same folder (a shared file "
                "system): add --shared-output-dir so that rank 0 alone writes, or give each "
                "node a folder of its own"
            )


def prepare_folder(args, info: du.DistInfo, node: Node) -> dict:
    """On each writer, before any data is read: its folder (one run per folder, --start-over,
    stale temporaries) and its newest valid checkpoint. Returns {"found": (state, path) or
    None, "problem": why its checkpoints are unusable or None, "resume": the mode}."""
    prefix = f"{node}: " if node.count > 1 and not info.is_main else ""
    try:
        run_dir.check_output_dir(args.output_dir)
        if info.is_main and args.weights and not os.path.isfile(args.weights):
            raise UsageError(f"--weights {args.weights}: no such file")
        restart = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)
        if args.start_over and restart > 0:
            # torchrun restarted the group: this run's own files are in the folder now
            log.info("--start-over ignored on torchrun's restart %d: resuming this run", restart)
            args.start_over, args.resume = False, "auto"
        if args.start_over:
            run_dir.move_run_aside(args.output_dir)
            args.resume = "none"
        run_dir.refuse_second_run(args)
    except UsageError as exc:
        raise UsageError(prefix + str(exc)) from None
    if os.path.isdir(args.output_dir):
        run_dir.remove_stale_temporaries(args.output_dir)
    local = {"found": None, "problem": None, "resume": args.resume}
    if args.resume == "auto":
        try:
            local["found"] = ckpt.load_latest(args.output_dir, keep_digest=True)
        except ckpt.CheckpointError as exc:
            local["problem"] = prefix + str(exc)
    return local


def locate(args, info: du.DistInfo, node: Node) -> tuple[dict, str] | None:
    """Every rank: the checkpoint this launch resumes from (state, path), or None.

    Raises UsageError on every rank for a folder mistake on any node, and CheckpointError
    when checkpoints exist but none on any node can be read.
    """
    check_not_shared(args, node)
    local = on_writers(node, lambda: prepare_folder(args, info, node)) or {}
    mode = du.broadcast(local.get("resume"))  # rank 0's, after --start-over
    if mode == "none":
        return None
    if mode != "auto":  # an explicit file: rank 0 reads it
        return du.on_rank0(lambda: (ckpt.load_file(args.resume), args.resume))
    return agree(args, info, node, local)


def _entry(found) -> dict | None:
    if found is None:
        return None
    state, path = found
    return {"epoch": state["epoch"], "step": state["step"], "digest": state["digest"], "path": path}


def agree(args, info: du.DistInfo, node: Node, local: dict) -> tuple[dict, str] | None:
    """The newest checkpoint any node holds, broadcast from its holder to every rank; the
    nodes that lack it write it (see the module docstring)."""
    found = local.pop("found", None)  # dropped below: only the holder's copy stays
    mine = _entry(found)
    table = du.all_gather(
        {"node": str(node), "writes": node.writes, "entry": mine, "problem": local.get("problem")}
    )
    holders = [r for r, row in enumerate(table) if row["entry"]]
    if not holders:
        problems = [row["problem"] for row in table if row["problem"]]
        if problems:
            raise ckpt.CheckpointError(problems[0])
        where = (
            args.output_dir
            if node.count == 1
            else f"{args.output_dir} on any of the {node.count} nodes"
        )
        if info.is_main:
            log.warning("no checkpoint in %s: starting from scratch", where)
        return None
    src = max(holders, key=lambda r: (table[r]["entry"]["epoch"], table[r]["entry"]["step"], -r))
    best = table[src]["entry"]
    box = [found[0] if info.rank == src else None]
    found = None
    dist.broadcast_object_list(box, src=src)
    state = box[0]
    state.pop("digest", None)
    origin = f"{os.path.basename(best['path'])} of {table[src]['node']}"
    supplied = [
        (row["node"], _held(row, best)) for row in table if row["writes"] and _held(row, best)
    ]

    def supply():
        what = _held(table[info.rank], best)
        if not what:
            return
        ckpt.save_checkpoint(state, args.output_dir)
        log.warning(
            "%s held %s: wrote the newest checkpoint (epoch %d, step %d) from %s",
            node,
            what,
            best["epoch"],
            best["step"],
            origin,
        )

    try:
        on_writers(node, supply)
    except UsageError as exc:
        raise UsageError(f"could not copy the checkpoint to a node: {exc}") from None
    if info.is_main and node.count > 1:
        if supplied:
            log.warning(
                "resuming from %s (epoch %d, step %d); copied to %s",
                origin,
                best["epoch"],
                best["step"],
                "; ".join(f"{name}, which held {what}" for name, what in supplied),
            )
        else:
            log.info("resuming from %s; every node holds the same checkpoint", origin)
    return state, (best["path"] if node.count == 1 else origin)


def _held(row: dict, best: dict) -> str | None:
    """What a writer held, when it is not the newest checkpoint; None when it is."""
    if not row["writes"]:
        return None
    entry = row["entry"]
    if entry is None:
        return f"an unreadable checkpoint ({row['problem']})" if row["problem"] else "no checkpoint"
    if entry["digest"] == best["digest"]:
        return None
    name = os.path.basename(entry["path"])
    if (entry["epoch"], entry["step"]) == (best["epoch"], best["step"]):
        return (
            f"a different checkpoint at the same epoch {entry['epoch']}, step {entry['step']} "
            f"({name})"
        )
    return f"an older checkpoint (epoch {entry['epoch']}, step {entry['step']}, {name})"


def sync_buffers(module: torch.nn.Module) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank, as DDP's
    broadcast_buffers does at each forward: then every node saves the same state."""
    by_dtype: dict = {}
    for b in module.buffers():
        by_dtype.setdefault(b.dtype, []).append(b)
    for bufs in by_dtype.values():
        flat = torch._utils._flatten_dense_tensors([b.detach() for b in bufs])
        dist.broadcast(flat, src=0)
        for b, synced in zip(bufs, torch._utils._unflatten_dense_tensors(flat, bufs), strict=True):
            b.detach().copy_(synced)
