"""How `make train` and the process group pick GPUs, checked without one.

The GPU side is a stand-in here: an `nvidia-smi` script that prints what the real one prints
for `-L` (or fails as it does without a loaded driver), and a patched `torch.cuda`.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest
import torch

from training import distributed
from training.errors import UsageError

from .conftest import REPO

NVIDIA_SMI_L = "\n".join(
    f"GPU {i}: NVIDIA H100 80GB HBM3 (UUID: GPU-0000000{i}-1111-2222-3333-444444444444)"
    for i in range(4)
)


def make_train_nproc(tmp_path, nvidia_smi_body: str) -> int:
    """The --nproc-per-node that `make -n train` would launch with this nvidia-smi on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\n{nvidia_smi_body}\n")
    smi.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    env.pop("NPROC", None)
    out = subprocess.run(
        ["make", "-n", "train"], cwd=REPO, env=env, capture_output=True, text=True, check=True
    ).stdout
    return int(re.search(r"--nproc-per-node=(\d+)", out).group(1))


def test_make_train_starts_one_process_per_gpu(tmp_path):
    assert make_train_nproc(tmp_path, f"cat <<'EOF'\n{NVIDIA_SMI_L}\nEOF") == 4


def test_make_train_falls_back_to_two_cpu_processes_when_the_driver_is_not_loaded(tmp_path):
    # What nvidia-smi prints on a node whose kernel module is missing, with its exit status 9.
    body = (
        "echo 'NVIDIA-SMI has failed because it couldn'\"'\"'t communicate with the NVIDIA "
        "driver.' >&2; exit 9"
    )
    assert make_train_nproc(tmp_path, body) == 2


def test_more_processes_than_gpus_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(distributed, "setup_logging", lambda rank, world_size: None)
    for name, value in {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "3"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(UsageError, match=r"LOCAL_RANK 3: this node has 2 visible GPU\(s\)"):
        distributed.init_distributed(device="cuda")
