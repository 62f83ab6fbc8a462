"""Interrupts and failed saves lose nothing: Ctrl-C checkpoints and exits 130, a second one
exits at once, a save that fails (disk full) removes its temporary file and keeps the last
checkpoint. (SIGINT to a real 2-process torchrun job: test_ddp.py.)"""

from __future__ import annotations

import errno
import os
import signal
import sys
import textwrap

import pytest
import torch

from training import checkpoint as ckpt
from training import engine
from training.checkpoint import load_file

from . import conftest
from .conftest import Launch, clean_env, run

# The shared tiny settings with a smaller dataset: these tests train more than once.
TINY = [*conftest.TINY, "--train-size=16", "--val-size=4"]


def test_failed_write_removes_its_temporary_and_keeps_the_file_in_place(tmp_path, monkeypatch):
    ckpt.save_checkpoint({"model": {"w": torch.ones(2)}, **_rest(1)}, str(tmp_path))

    def full_disk(obj, f, *a, **k):
        f.write(b"x" * 4096)  # part of the file is written, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        ckpt.save_checkpoint({"model": {"w": torch.zeros(2)}, **_rest(2)}, str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.pt"]
    assert load_file(str(tmp_path / "checkpoint.pt"))["epoch"] == 1


def _rest(epoch):
    return {
        "optimizer": {},
        "lr_scheduler": {},
        "scaler": {},
        "epoch": epoch,
        "step": 0,
        "config": {},
    }


# The real job, with torch.save failing like a full disk on the second checkpoint.
_FULL_DISK_ON_SECOND_SAVE = """
    import errno, runpy, sys, torch
    real, calls = torch.save, []
    def save(obj, f, *a, **k):
        if isinstance(obj, dict) and "optimizer" in obj:
            calls.append(1)
            if len(calls) == 2:
                f.write(b"x" * 65536)
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(obj, f, *a, **k)
    torch.save = save
    sys.argv = ["training", *sys.argv[1:]]
    runpy.run_module("training", run_name="__main__")
"""


@pytest.mark.slow
def test_disk_full_during_a_save_stops_with_one_line_and_keeps_the_last_checkpoint(tmp_path):
    out = tmp_path / "out"
    code = textwrap.dedent(_FULL_DISK_ON_SECOND_SAVE)
    r = run([sys.executable, "-c", code, *TINY, "--epochs=2", f"--output-dir={out}"])
    assert r.returncode == 2, r.stderr[-3000:]
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert "could not write" in errors[0] and "No space left on device (ENOSPC)" in errors[0]
    assert "the checkpoint of epoch 1, step 0 is kept" in errors[0]
    assert not [p for p in os.listdir(out) if ".tmp." in p]
    assert load_file(str(out / "checkpoint.pt"))["epoch"] == 1
    # The relaunch (disk freed) resumes from the kept checkpoint.
    r = run([sys.executable, "-m", "training", *TINY, "--epochs=2", f"--output-dir={out}"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed from epoch 1, step 0/2" in r.stderr


@pytest.mark.slow
def test_ctrl_c_once_checkpoints_and_exits_130(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "training", *TINY, "--train-size=400", f"--output-dir={out}"]
    launch = Launch(cmd, env=clean_env())
    launch.wait_for(r"epoch 0 step 2/50", 90)
    os.kill(launch.proc.pid, signal.SIGINT)
    assert launch.wait(60) == 130, launch.output[-3000:]
    assert "stopped by SIGINT at epoch 0" in launch.output
    assert "Traceback" not in launch.output
    state = load_file(str(out / "checkpoint.pt"))
    assert state["epoch"] == 0 and 2 <= state["step"] < 50


def test_a_second_ctrl_c_exits_at_once_but_a_forwarded_copy_does_not(monkeypatch, tmp_path):
    now = [100.0]
    stop = engine.StopFlag(clock=lambda: now[0])
    exits = []
    monkeypatch.setattr(engine.os, "_exit", exits.append)
    pending = tmp_path / "checkpoint.pt.tmp.1"
    pending.write_bytes(b"half")
    monkeypatch.setattr(ckpt, "_PENDING", {str(pending)})
    stop(signal.SIGINT, None)
    assert stop.requested and stop.exit_status == 130 and exits == []
    now[0] += 0.2  # torchrun forwarding the Ctrl-C the terminal already delivered
    stop(signal.SIGINT, None)
    assert exits == [] and pending.exists()
    now[0] += 3.0  # a person pressing Ctrl-C again
    stop(signal.SIGINT, None)
    assert exits == [130] and not pending.exists()


def test_sigterm_twice_is_one_request_and_exits_0():
    stop = engine.StopFlag(clock=lambda: 0.0)
    stop(signal.SIGTERM, None)
    stop(signal.SIGTERM, None)
    assert stop.requested and stop.signal == "SIGTERM" and stop.exit_status == 0
