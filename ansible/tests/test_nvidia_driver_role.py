"""The nvidia_driver role's interface: site.yml parses, and defaults, argument specs and the
inventory agree with each other."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "ansible" / "roles" / "nvidia_driver"
BIN = Path(sys.executable).parent


def _yaml(path: Path):
    return yaml.safe_load(path.read_text())


DEFAULTS = _yaml(ROLE / "defaults" / "main.yml")
SPEC = _yaml(ROLE / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]


def test_site_yml_passes_syntax_check():
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "site.yml", "-i", "inventory", "--syntax-check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_driver_play_comes_first_in_site_yml():
    first = _yaml(ROOT / "site.yml")[0]
    assert first["hosts"] == "gpu_nodes"
    assert first["become"] is True
    assert [r["role"] if isinstance(r, dict) else r for r in first["roles"]] == ["nvidia_driver"]


def test_argument_specs_mirror_the_defaults():
    assert sorted(SPEC) == sorted(DEFAULTS)
    for name, option in SPEC.items():
        assert option["default"] == DEFAULTS[name], name
        assert option.get("description"), name


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_every_input_is_prefixed_and_commented(name):
    assert name.startswith("nvidia_driver_")
    text = (ROLE / "defaults" / "main.yml").read_text().splitlines()
    line = next(i for i, row in enumerate(text) if row.startswith(f"{name}:"))
    assert text[line - 1].startswith("#"), f"{name} has no comment above it"


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_the_role_readme_documents_every_input(name):
    assert f"`{name}`" in (ROLE / "README.md").read_text()


def test_inventory_settings_are_role_inputs_with_valid_values():
    settings = _yaml(ROOT / "inventory" / "group_vars" / "gpu_nodes" / "nvidia_driver.yml")
    assert settings, "inventory/group_vars/gpu_nodes/nvidia_driver.yml is empty"
    for name, value in settings.items():
        assert name in SPEC, f"{name} is not an input of the role"
        if "choices" in SPEC[name]:
            assert value in SPEC[name]["choices"], name
    # Every input a site may change is there, commented; how a reboot is done and detected
    # only changes for machines that are not servers (the molecule containers).
    reboot_mechanics = {"nvidia_driver_reboot_boot_time_command", "nvidia_driver_reboot_command"}
    assert sorted(settings) == sorted(set(DEFAULTS) - reboot_mechanics)


VARS = _yaml(ROLE / "vars" / "main.yml")


# PCI IDs from the supported-GPU table of NVIDIA/open-gpu-kernel-modules' README (595.45.04,
# commit df1c9a3): every ID from 0x2900 up there is Blackwell, the last is GB300's 31C2.
@pytest.mark.parametrize(
    ("device_id", "open_only"),
    [
        ("2901", True),  # B200
        ("2941", True),  # GB200
        ("2b85", True),  # GeForce RTX 5090
        ("2bb5", True),  # RTX PRO 6000 Blackwell Server Edition
        ("2d05", True),  # GeForce RTX 5060
        ("2e12", True),  # GB10
        ("2f58", True),  # GeForce RTX 5070 Ti Laptop GPU
        ("3182", True),  # B300 SXM6 AC
        ("31c2", True),  # GB300
        ("2342", True),  # GH200 120GB / 480GB
        ("2348", True),  # GH200 144G HBM3e
        ("2330", False),  # H100 80GB HBM3: open recommended, proprietary still supported
        ("2335", False),  # H200
        ("233b", False),  # H200 NVL
        ("28f8", False),  # RTX 2000 Ada Generation Embedded GPU: the last ID below 0x2900
        ("20b0", False),  # A100 SXM4
        ("1db4", False),  # V100: the open modules do not support it at all
    ],
)
def test_open_only_rule_matches_blackwell_and_grace_hopper_only(device_id, open_only):
    rule = re.compile(VARS["__nvidia_driver_open_only_ids_regex"])
    assert bool(rule.match(device_id)) is open_only
