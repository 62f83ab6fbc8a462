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


@pytest.mark.parametrize(
    ("device_id", "open_only"),
    [
        ("2901", True),  # B200 (GB100)
        ("2b85", True),  # GeForce RTX 5090 (GB202)
        ("2bb1", True),  # RTX PRO 6000 Blackwell
        ("2342", True),  # GH200
        ("2330", False),  # H100 SXM5: open recommended, proprietary still supported
        ("2335", False),  # H200
        ("20b0", False),  # A100 SXM4
        ("1db4", False),  # V100: the open modules do not support it at all
    ],
)
def test_open_only_rule_matches_blackwell_and_grace_hopper_only(device_id, open_only):
    rule = re.compile(VARS["__nvidia_driver_open_only_ids_regex"])
    assert bool(rule.match(device_id)) is open_only
