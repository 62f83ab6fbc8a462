"""Checkpoints: plain dicts of tensors and numbers, written atomically, the last two kept.

`checkpoint.pt` is the newest resumable state and `checkpoint_prev.pt` the one before it.
A save writes a temporary file, syncs it, moves the current checkpoint to `_prev` and renames
the new one into place, so a crash at any moment leaves at least one whole file. Each
checkpoint carries a digest of its own contents: a file that fails
`torch.load(weights_only=True)`, lacks a key or no longer matches its digest (a flipped byte
inside a tensor loads without error) is reported and the previous one is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import random

import numpy as np
import torch

from .errors import UsageError

log = logging.getLogger("training")

LATEST = "checkpoint.pt"
PREVIOUS = "checkpoint_prev.pt"
REQUIRED = ("model", "optimizer", "lr_scheduler", "scaler", "epoch", "step", "config")


class CheckpointError(UsageError):
    """A checkpoint that cannot be used (corrupt, not ours, unreadable)."""


# Temporary files being written now: a second Ctrl-C, which exits at once, removes them.
_PENDING: set[str] = set()


def remove_pending_temporaries() -> None:
    for tmp in list(_PENDING):
        with contextlib.suppress(OSError):
            os.remove(tmp)
        _PENDING.discard(tmp)


def atomic_save(obj, path: str, previous: str | None = None) -> None:
    """Write to a temporary file, sync, then rename into place (moving the old file to
    `previous` first when given). A failed write (disk full, permission) removes the
    temporary file and leaves the files in place untouched."""
    tmp = f"{path}.tmp.{os.getpid()}"
    _PENDING.add(tmp)
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    finally:
        _PENDING.discard(tmp)
    if previous and os.path.exists(path):
        os.replace(path, previous)
    os.replace(tmp, path)
    fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(fd)  # make the renames durable too
    finally:
        os.close(fd)


def digest(obj) -> str:
    """A hash of every tensor's bytes and every number and string in a nested structure."""
    h = hashlib.blake2b(digest_size=16)

    def feed(x):
        if isinstance(x, torch.Tensor):
            h.update(f"T{x.dtype}{tuple(x.shape)}".encode())
            h.update(x.detach().cpu().contiguous().flatten().view(torch.uint8).numpy().tobytes())
        elif isinstance(x, dict):
            for k in sorted(x, key=str):
                h.update(f"K{k!r}".encode())
                feed(x[k])
        elif isinstance(x, list | tuple):
            h.update(f"L{len(x)}".encode())
            for v in x:
                feed(v)
        else:
            h.update(f"V{x!r}".encode())

    feed(obj)
    return h.hexdigest()


def save_checkpoint(state: dict, output_dir: str) -> str:
    """Write `state` as checkpoint.pt, keeping the one it replaces as checkpoint_prev.pt."""
    latest = os.path.join(output_dir, LATEST)
    state = {k: v for k, v in state.items() if k != "digest"}
    state["digest"] = digest(state)
    atomic_save(state, latest, previous=os.path.join(output_dir, PREVIOUS))
    return latest


def load_file(path: str, keep_digest: bool = False) -> dict:
    """Load and sanity-check one checkpoint; raise CheckpointError saying what is wrong.

    With `keep_digest`, the checked digest stays in the state under "digest" (computed for
    a checkpoint written before digests existed); save_checkpoint ignores that key."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if isinstance(exc, FileNotFoundError):
            raise CheckpointError(f"--resume {path}: no such file") from None
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise CheckpointError(
            f"{path} is corrupt or truncated ({type(exc).__name__}: {first})"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{path} is not a training checkpoint: --resume takes a checkpoint.pt"
        )
    if missing := [k for k in REQUIRED if k not in state]:
        hint = "; to start from a model file, use --weights" if "model" in state else ""
        raise CheckpointError(
            f"{path} is not a training checkpoint (it lacks {', '.join(missing)}): --resume "
            f"takes a checkpoint.pt{hint}"
        )
    saved = state.pop("digest", None)
    if saved is not None and saved != digest(state):
        raise CheckpointError(f"{path} is corrupt (its contents no longer match their digest)")
    if keep_digest:
        state["digest"] = saved if saved is not None else digest(state)
    return state


def load_latest(output_dir: str, keep_digest: bool = False) -> tuple[dict, str] | None:
    """The newest readable checkpoint in output_dir and its path; None when there is none.

    Falls back to checkpoint_prev.pt when checkpoint.pt is unreadable (and says so); raises
    CheckpointError when checkpoints exist but none can be read.
    """
    paths = [os.path.join(output_dir, n) for n in (LATEST, PREVIOUS)]
    present = [p for p in paths if os.path.exists(p)]
    if not present:
        return None
    errors = []
    for path in present:
        try:
            state = load_file(path, keep_digest)
        except CheckpointError as exc:
            errors.append(str(exc))
            log.warning("%s; trying the previous checkpoint", exc)
            continue
        if errors:
            log.warning("using the previous checkpoint %s (epoch %d)", path, state["epoch"])
        return state, path
    raise CheckpointError(
        "no readable checkpoint: "
        + "; ".join(errors)
        + " (add --start-over to move them aside and train afresh)"
    )


def rng_state() -> dict:
    """This process's random generator states, as tensors and numbers."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": list(random.getstate()[1]) + [random.getstate()[0]],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    *internal, version = state["python"]
    random.setstate((version, tuple(internal), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
