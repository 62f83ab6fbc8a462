"""A checkpoint on every node, with real torchrun agents on localhost (one process each, a c10d
rendezvous, a folder per node as on machines without shared storage): a resume with fewer
nodes continues mid-epoch from the newest checkpoint any node holds, and a node that held an
older one is given it and says so."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import time

import pytest
import torch

from .conftest import TINY, Launch, torchrun_cmd

pytestmark = pytest.mark.slow

# 6 steps per epoch with 3 processes (2 images each) and with 2 (3 each); evaluation at the end.
ARGS = (*TINY, "--train-size=36", "--val-size=4", "--batch-size=6", "--epochs=2", "--eval-every=0")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch_nodes(tmp_path, names, job):
    launcher = (
        f"--nnodes={len(names)}",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint=127.0.0.1:{_port()}",
        f"--rdzv-id={job}",
    )
    launches = []
    for name in names:
        (tmp_path / name).mkdir(exist_ok=True)
        cmd = torchrun_cmd(*ARGS, "--output-dir=out", nproc=1, launcher=launcher)
        launches.append(Launch(cmd, cwd=tmp_path / name))
    return launches


def _wait_for_any(launches, pattern, timeout=180):
    deadline = time.monotonic() + timeout
    while not re.search(pattern, "".join(n.output for n in launches)):
        if time.monotonic() > deadline or any(n.proc.poll() is not None for n in launches):
            for n in launches:
                n.kill()
            raise AssertionError("".join(n.output for n in launches)[-6000:])
        time.sleep(0.05)


def _wait_all(launches, timeout=180) -> str:
    rcs = [launch.wait(timeout) for launch in launches]
    output = "".join(launch.output for launch in launches)
    assert rcs == [0] * len(launches), output[-6000:]
    return output


def _load(path):
    return torch.load(path, weights_only=True)


def test_three_nodes_stop_mid_epoch_and_two_resume_from_the_newest_checkpoint(tmp_path):
    nodes = _launch_nodes(tmp_path, ["a", "b", "c"], "three")
    _wait_for_any(nodes, r"epoch 1 step 2/6")  # rank 0, wherever it is, logs the steps
    for n in nodes:  # as `systemctl stop` on every node: the workers get SIGTERM
        for pid in n.workers():
            os.kill(pid, signal.SIGTERM)
    first = _wait_all(nodes)
    assert first.count("stopped by SIGTERM at epoch 1") == 1, first[-6000:]
    saved = {n: _load(tmp_path / n / "out" / "checkpoint.pt") for n in "abc"}
    step = saved["a"]["step"]
    assert saved["a"]["epoch"] == 1 and 2 <= step < 6
    # One state on every node: the same digest (parameters, optimizer, buffers, sums, clock).
    assert len({s["digest"] for s in saved.values()}) == 1
    assert "WARNING no checkpoint in out on any of the 3 nodes: starting from scratch" in first
    # Seed step 5: rank 0's node alone holds the model files and metrics; the others hold
    # checkpoint.pt and the one before it, nothing else.
    folders = {n: sorted(p.name for p in (tmp_path / n / "out").iterdir()) for n in "abc"}
    assert sum("model_0.pt" in names for names in folders.values()) == 1, folders
    others = [names for names in folders.values() if "model_0.pt" not in names]
    assert others == [["checkpoint.pt", "checkpoint_prev.pt"]] * 2, folders

    # Node b is gone for good; node d joins with an older checkpoint (it left an epoch ago).
    (tmp_path / "d" / "out").mkdir(parents=True)
    shutil.copy(
        tmp_path / "a" / "out" / "checkpoint_prev.pt", tmp_path / "d" / "out" / "checkpoint.pt"
    )
    assert _load(tmp_path / "d" / "out" / "checkpoint.pt")["step"] == 0
    second = _wait_all(_launch_nodes(tmp_path, ["c", "d"], "two"))

    assert "starting from scratch" not in second
    assert f"resumed from epoch 1, step {step}/6" in second
    assert f"epoch 1 step {step + 1}/6" in second
    done_before = "|".join(f"epoch 1 step {k}/6" for k in range(1, step + 1))
    assert not re.search(rf"epoch 0 step|{done_before}", second), second[-6000:]
    d_out, c_out = tmp_path / "d" / "out", tmp_path / "c" / "out"
    told = (
        rf"WARNING node \d \([^:]+:{re.escape(str(d_out))}\) held an older checkpoint "
        rf"\(epoch 1, step 0, checkpoint.pt\): wrote the newest checkpoint \(epoch 1, step "
        rf"{step}\) from checkpoint.pt of node \d \([^:]+:{re.escape(str(c_out))}\)"
    )
    assert re.search(told, second), second[-6000:]
    assert re.search(
        r"resuming from checkpoint.pt of node .*; copied to node .*which held an older", second
    )

    final = {n: _load(tmp_path / n / "out" / "checkpoint.pt") for n in "cd"}
    assert final["c"]["digest"] == final["d"]["digest"]
    assert (final["c"]["epoch"], final["c"]["step"], final["c"]["world_size"]) == (2, 0, 2)
    assert final["c"]["global_step"] == 12  # 6 + 6 steps: none lost, none repeated
    # The history follows rank 0: its metrics.jsonl shows both epochs and the world sizes.
    (main,) = [o for o in (c_out, d_out) if (o / "model_1.pt").exists()]
    rows = [json.loads(ln) for ln in (main / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["world_size"]) for r in rows] == [(0, 3), (1, 2)]
    assert rows[1]["map"] is not None


def test_two_nodes_sharing_one_folder_are_refused_without_shared_output_dir(tmp_path):
    """One folder seen by both nodes (a shared file system): two writers would race, so the
    launch stops at once with one line, unless --shared-output-dir makes rank 0 the writer."""
    shared = tmp_path / "nfs"
    small = ("--train-size=8", "--val-size=4", "--epochs=1", f"--output-dir={shared}")

    def launch(*extra):
        launcher = (
            "--nnodes=2",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint=127.0.0.1:{_port()}",
            f"--rdzv-id=shared{len(extra)}",
        )
        cmd = torchrun_cmd(*TINY, *small, *extra, nproc=1, launcher=launcher)
        nodes = [Launch(cmd, cwd=tmp_path) for _ in range(2)]
        return [n.wait(180) for n in nodes], "".join(n.output for n in nodes)

    rcs, out = launch()
    assert rcs != [0, 0], out[-4000:]
    errors = set(re.findall(r"error: (.*)", out))
    # One message on every rank; the traceback torchrun prints is its own, not the job's.
    assert len(errors) == 1 and "[rank0]: Traceback" not in out, out[-4000:]
    assert {int(c) for c in re.findall(r"exitcode\s+:\s+(-?\d+)", out)} == {2}, out[-4000:]
    (line,) = errors
    assert re.match(
        r"--output-dir: node \d \(.*nfs\) and node \d \(.*nfs\) write to the same", line
    )
    assert "add --shared-output-dir" in line
    assert not [p for p in shared.iterdir()]  # the probes are gone, nothing else was written

    rcs, out = launch("--shared-output-dir")
    assert rcs == [0, 0], out[-4000:]
    assert {"checkpoint.pt", "model_0.pt"} <= {p.name for p in shared.iterdir()}
    # One rotation per save: _prev is the copy saved before the evaluation (a second writer
    # would have rotated the final copy into _prev as well).
    assert _load(shared / "checkpoint_prev.pt")["eval_pending"] == 0
    assert _load(shared / "checkpoint.pt")["eval_pending"] is None
