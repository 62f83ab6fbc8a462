"""Test helpers: real torchrun launches with timeouts, the test data, a gloo group."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch.distributed as dist

REPO = Path(__file__).resolve().parents[2]
# Real COCO-format files shipped with the tests (source and licence in data/README.md).
TEST_DATA = Path(__file__).resolve().parent / "data"

# Small enough that a 2-process epoch takes about a second on 2 cores.
TINY = [
    "--device=cpu",
    "--backbone=resnet10",
    "--image-size=64",
    "--train-size=32",
    "--val-size=8",
    "--batch-size=8",
    "--workers=0",
    "--log-every=1",
    "--progress=log",
]

# Launcher variables of the test process itself must not leak into the launches.
_LAUNCH_VARS = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
)


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _LAUNCH_VARS}
    # As the Makefile and the README: a restarted worker group must not read the previous
    # group's addresses from torchrun's shared store (pytorch/pytorch#135712).
    env["TORCH_DISABLE_SHARE_RDZV_TCP_STORE"] = "1"
    env.update(extra)
    return env


def torchrun_cmd(*args, nproc=2, launcher=()) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        *(launcher or ("--standalone", "--nnodes=1")),
        f"--nproc-per-node={nproc}",
        "-m",
        "training",
        *map(str, args),
    ]


def run(cmd, timeout=120, env=None, cwd=None) -> subprocess.CompletedProcess:
    """Run to completion; a hang fails the test after `timeout` seconds."""
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or clean_env(),
        cwd=cwd or REPO,
    )


class Launch:
    """A background launch whose merged output is read line by line, in its own session."""

    def __init__(self, cmd, env=None, cwd=None):
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env or clean_env(),
            cwd=cwd or REPO,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if m := re.search(pattern, self.output):
                return m
            if self.proc.poll() is not None:
                self._reader.join(5)
                if m := re.search(pattern, self.output):
                    return m
                break
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"{pattern!r} never appeared; output:\n{self.output[-4000:]}")

    def wait(self, timeout: float = 120) -> int:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"no exit in {timeout} s:\n{self.output[-4000:]}") from None
        self._reader.join(5)
        return rc

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def workers(self) -> list[int]:
        """PIDs of the worker processes (children of torchrun)."""
        cmd = ["pgrep", "-P", str(self.proc.pid)]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return [int(p) for p in out.stdout.split()]


@pytest.fixture(scope="session")
def process_group(tmp_path_factory):
    """A one-process gloo group for in-process tests of code that uses collectives."""
    if not dist.is_initialized():
        store = tmp_path_factory.mktemp("pg") / "store"
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    yield
    # Left for the interpreter to tear down: other session fixtures may still use it.


@pytest.fixture(scope="session")
def test_data() -> Path:
    return TEST_DATA
