"""The output folder of a run: checked before any data is read, one run per folder.

- `check_output_dir`: the folder is a folder (or can be created), is writable, and has room
  for one more checkpoint when the size of one is known (an existing checkpoint.pt).
- A folder holds one run. `--resume none` (or `--resume PATH` from elsewhere) into a folder
  that holds a run is refused; `--start-over` first moves that run's files into
  `previous/<UTC time>/` inside the folder (nothing is deleted).
- `check_resume`: a checkpoint whose optimizer, backbone, classes, image size or batch size
  differ from the flags is refused with one line that says what differs; other changes (more
  epochs, another learning rate for a fresh schedule...) are listed and the run goes on.
- `truncate_metrics`: on resume, metrics.jsonl keeps the epochs before the resumed one only,
  so a relaunch never leaves two rows for one epoch.
"""

from __future__ import annotations

import errno
import glob
import json
import logging
import os
import shutil
import time

from .errors import UsageError

log = logging.getLogger("training")

# What one run writes into its folder (moved aside together by --start-over).
RUN_FILES = (
    "checkpoint.pt",
    "checkpoint_prev.pt",
    "model_*.pt",
    "metrics.jsonl",
    "curves.png",
    "val_examples.png",
    "tensorboard",
    "*.tmp.*",
)
# Flags a resumed run must share with its checkpoint: the state would not fit otherwise.
MUST_MATCH = ("optimizer", "backbone", "image_size", "batch_size", "frozen_bn")
# Flags that only say how this process runs: not compared.
NOT_COMPARED = {
    "output_dir",
    "shared_output_dir",
    "resume",
    "config",
    "workers",
    "progress",
    "log_every",
    "sync_every",
    "device",
    "dist_backend",
    "start_over",
    "debug",
}


def _existing_ancestor(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def check_output_dir(path: str, option: str = "--output-dir") -> None:
    """Raise UsageError unless `path` is (or can become) a writable folder with room to spare."""
    flag = f"{option} {path}"
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"{flag} is a file, not a folder: pick another {option}")
    base = _existing_ancestor(path)
    if not os.path.isdir(base):
        raise UsageError(f"{flag}: {base} is a file, so the folder cannot be created there")
    probe = os.path.join(base, f".write-test.{os.getpid()}")
    try:
        with open(probe, "wb") as f:
            f.write(b"0")
        os.remove(probe)
    except OSError as exc:
        what = "cannot be written" if base == os.path.abspath(path) else "cannot be created"
        raise UsageError(
            f"{flag} {what} ({base}: {exc.strerror or exc}): pick a writable {option}"
        ) from None
    latest = os.path.join(path, "checkpoint.pt")
    if os.path.isfile(latest):
        need = os.path.getsize(latest)
        free = shutil.disk_usage(base).free
        if free < need:
            raise UsageError(
                f"{flag}: {free / 2**20:.0f} MiB free, a checkpoint needs {need / 2**20:.0f} "
                f"MiB: free some space or pick another {option}"
            )


def run_files(path: str) -> list[str]:
    """The names of a run's files in `path` (empty when it holds no run)."""
    found = []
    for pattern in RUN_FILES:
        for p in sorted(glob.glob(os.path.join(glob.escape(path), pattern))):
            if os.path.isdir(p) and not os.listdir(p):
                continue
            found.append(os.path.basename(p))
    return found


def move_run_aside(path: str) -> str | None:
    """Move the run in `path` into path/previous/<UTC time>/; return that folder (None if empty)."""
    names = run_files(path)
    if not names:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = os.path.join(path, "previous", stamp)
    n = 1
    while os.path.exists(target):
        n += 1
        target = os.path.join(path, "previous", f"{stamp}-{n}")
    os.makedirs(target)
    for name in names:
        os.replace(os.path.join(path, name), os.path.join(target, name))
    log.info("--start-over: moved the previous run (%s) to %s", ", ".join(names), target)
    return target


def refuse_second_run(args) -> None:
    """A fresh start (or a resume from another folder's checkpoint) into a folder holding a run
    is refused unless --start-over moved that run aside."""
    resume_here = args.resume == "auto" or (
        args.resume not in ("none",)
        and os.path.abspath(os.path.dirname(args.resume)) == os.path.abspath(args.output_dir)
    )
    if resume_here:
        return
    names = run_files(args.output_dir)
    if names:
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        raise UsageError(
            f"--output-dir {args.output_dir} already holds a run ({shown}); --resume "
            f"{args.resume} would mix two runs: continue it with --resume auto, pick another "
            "--output-dir, or add --start-over to move the old run aside"
        )


def remove_stale_temporaries(path: str) -> None:
    """Temporary files of a save that was killed half-way (they can fill the disk)."""
    for tmp in glob.glob(os.path.join(glob.escape(path), "*.tmp.*")):
        try:
            size = os.path.getsize(tmp)
            os.remove(tmp)
        except OSError:
            continue
        log.warning("removed %s (%.1f MiB) left by an interrupted save", tmp, size / 2**20)


def check_resume(config: dict, args, path: str) -> None:
    """Refuse a checkpoint whose state cannot fit these flags; list the harmless changes."""
    differ = [
        k for k in MUST_MATCH if k in config and config.get(k) != getattr(args, k, config.get(k))
    ]
    if differ:
        what = ", ".join(
            f"--{k.replace('_', '-')} {config[k]} -> {getattr(args, k)}" for k in differ
        )
        raise UsageError(
            f"{path} does not fit these flags ({what}): pass the checkpoint's values to resume, "
            "or --start-over (or another --output-dir) to train afresh"
        )
    changed = [
        k
        for k in sorted(vars(args))
        if k not in NOT_COMPARED and k in config and config[k] != getattr(args, k)
    ]
    if changed:
        what = ", ".join(
            f"--{k.replace('_', '-')} {config[k]} -> {getattr(args, k)}" for k in changed
        )
        log.info("resuming with changed flags (harmless for the saved state): %s", what)


def check_resume_classes(saved: list[str] | None, names: list[str], path: str) -> None:
    if saved is not None and list(saved) != list(names):
        raise UsageError(
            f"{path} was trained on classes {', '.join(saved)}; the data lists "
            f"{', '.join(names)}: use the same classes to resume, or --start-over"
        )


def truncate_metrics(path: str, start_epoch: int) -> None:
    """Keep the rows of metrics.jsonl for epochs before `start_epoch` (written atomically)."""
    metrics = os.path.join(path, "metrics.jsonl")
    if not os.path.isfile(metrics):
        return
    with open(metrics) as f:
        lines = [ln for ln in f if ln.strip()]
    kept = []
    for ln in lines:
        try:
            if json.loads(ln).get("epoch", 0) < start_epoch:
                kept.append(ln)
        except ValueError:
            continue
    if len(kept) == len(lines):
        return
    tmp = f"{metrics}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.writelines(kept)
    os.replace(tmp, metrics)
    log.info(
        "metrics.jsonl: dropped %d row(s) of epochs from %d on", len(lines) - len(kept), start_epoch
    )


def append_metrics(path: str, record: dict) -> None:
    with open(os.path.join(path, "metrics.jsonl"), "a") as f:
        f.write(json.dumps(record) + "\n")


def write_metrics(path: str, rows: list[dict]) -> None:
    """metrics.jsonl made of `rows` (a resume's history from its checkpoint), atomically."""
    metrics = os.path.join(path, "metrics.jsonl")
    tmp = f"{metrics}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)
    os.replace(tmp, metrics)


def describe_os_error(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "")
    return f"{exc.strerror or exc}{f' ({name})' if name else ''}"


def check_output_file(path: str, option: str, inputs: tuple[str, ...] = ()) -> None:
    """A file to be written: its folder exists and is writable, it is not one of the inputs."""
    if os.path.isdir(path):
        raise UsageError(f"{option} {path} is a folder: give a file name")
    for src in inputs:
        if src and os.path.exists(src) and os.path.exists(path) and os.path.samefile(src, path):
            raise UsageError(f"{option} {path} is also an input: pick another file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"{option} {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{option} {path}: the folder {folder} is not writable")
