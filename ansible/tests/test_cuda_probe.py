"""The CUDA probe of the nvidia_driver role against the scenario's stand-in libcuda.

The stand-in (molecule/nvidia_driver/standins/libcuda.c) is compiled here and reads the state
the other stand-ins keep under NVIDIA_STANDIN_ROOT, so each case sets up one node's state."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = ROOT / "ansible" / "roles" / "nvidia_driver" / "files" / "cuda_probe.py"
SOURCE = ROOT / "molecule" / "nvidia_driver" / "standins" / "libcuda.c"
H100 = "NVIDIA H100 80GB HBM3"

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")


@pytest.fixture(scope="module")
def libcuda(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lib") / "libcuda.so.1"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(out), str(SOURCE)], check=True)
    return out


def node(
    root: Path,
    *,
    gpus=2,
    loaded="570.172.08",
    library="570.172.08",
    nvswitch=False,
    fabric_manager=None,
) -> Path:
    """Write the stand-in state of one node under root."""
    for folder in ("etc/nvidia-standin", "run/nvidia-standin", "usr/lib/nvidia-standin"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    lines = [f"0000:{i + 1:02x}:00.0 2330 {H100}\n" for i in range(gpus)]
    (root / "etc/nvidia-standin/gpus").write_text("".join(lines))
    (root / "usr/lib/nvidia-standin/library-version").write_text(f"{library}\n")
    if loaded:
        (root / "run/nvidia-standin/loaded-version").write_text(f"{loaded}\n")
    if nvswitch:  # what setup.sh writes: the NVLink generation of the NVSwitch fabric
        (root / "etc/nvidia-standin/fabric").write_text(f"{nvswitch}\n")
    if fabric_manager:
        (root / "run/nvidia-standin/fabric-manager").write_text(f"{fabric_manager}\n")
    return root


def run_probe(libcuda: Path, root: Path, *args: str) -> tuple[int, dict]:
    proc = subprocess.run(
        [sys.executable, str(PROBE), "--library", str(libcuda), *args],
        env={**os.environ, "NVIDIA_STANDIN_ROOT": str(root)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return proc.returncode, json.loads(proc.stdout)


def test_every_gpu_gets_a_context_on_a_healthy_node(libcuda, tmp_path):
    rc, report = run_probe(libcuda, node(tmp_path, gpus=2), "--expect", "2")
    assert rc == 0
    assert report["ok"] is True
    assert report["cuda_version"] == "12.8"
    assert [d["name"] for d in report["devices"]] == [H100, H100]


@pytest.mark.parametrize("fabric", ["nvlink4", "nvlink5"])  # HGX H100, HGX B200
def test_nvswitch_node_without_fabric_manager_fails_with_802_and_names_it(
    libcuda, tmp_path, fabric
):
    rc, report = run_probe(libcuda, node(tmp_path, gpus=8, nvswitch=fabric))
    assert rc == 1
    assert (report["call"], report["error"]) == ("cuInit", 802)
    assert report["name"] == "CUDA_ERROR_SYSTEM_NOT_READY"
    assert "fabricmanager" in report["hint"]


def test_fabric_manager_at_another_version_is_still_802(libcuda, tmp_path):
    rc, report = run_probe(
        libcuda, node(tmp_path, gpus=8, nvswitch="nvlink4", fabric_manager="570.133.20")
    )
    assert (rc, report["error"]) == (1, 802)


def test_fabric_manager_at_the_driver_version_initialises_all_eight(libcuda, tmp_path):
    state = node(tmp_path, gpus=8, nvswitch="nvlink4", fabric_manager="570.172.08")
    rc, report = run_probe(libcuda, state, "--expect", "8")
    assert (rc, report["count"]) == (0, 8)


def test_library_of_another_version_than_the_loaded_module_is_803(libcuda, tmp_path):
    rc, report = run_probe(libcuda, node(tmp_path, loaded="535.183.01"))
    assert (rc, report["error"]) == (1, 803)
    assert "reboot" in report["hint"]


def test_no_loaded_module_is_no_device(libcuda, tmp_path):
    rc, report = run_probe(libcuda, node(tmp_path, loaded=None))
    assert (rc, report["name"]) == (1, "CUDA_ERROR_NO_DEVICE")


def test_fewer_gpus_than_expected_fails(libcuda, tmp_path):
    rc, report = run_probe(libcuda, node(tmp_path, gpus=1), "--expect", "2")
    assert rc == 1
    assert report["ok"] is False
    assert "expected 2" in report["hint"]


def test_missing_library_is_reported_not_raised(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(PROBE), "--library", str(tmp_path / "libcuda.so.1")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["call"] == "dlopen"
