"""The parser of `ubuntu-drivers devices` reports, and the module that wraps it."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

MODULE_PATH = (
    Path(__file__).resolve().parents[1]
    / "roles"
    / "nvidia_driver"
    / "library"
    / "ubuntu_drivers_facts.py"
)


def _load_module():
    spec = importlib.util.spec_from_file_location("ubuntu_drivers_facts", MODULE_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


udf = _load_module()
parse_devices = udf.parse_devices

# What the seed's step 1 shows on Ubuntu 18.04 (a GeForce card, 470 recommended), before it
# runs `sudo ubuntu-drivers autoinstall` or `sudo apt install nvidia-driver-470`.
SEED_1804 = """\
== /sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0 ==
modalias : pci:v000010DEd00001C03sv00001458sd00003717bc03sc00i00
vendor   : NVIDIA Corporation
model    : GP106 [GeForce GTX 1060 6GB]
driver   : nvidia-driver-418-server - distro non-free
driver   : nvidia-driver-470 - distro non-free recommended
driver   : nvidia-driver-460-server - distro non-free
driver   : nvidia-driver-390 - distro non-free
driver   : nvidia-driver-460 - distro non-free
driver   : nvidia-driver-450-server - distro non-free
driver   : xserver-xorg-video-nouveau - distro free builtin

"""


def _drivers(device: dict) -> dict[str, dict]:
    return {driver["package"]: driver for driver in device["drivers"]}


def test_seed_report_gives_one_nvidia_device_with_470_recommended():
    devices = parse_devices(SEED_1804)
    assert len(devices) == 1
    device = devices[0]
    assert device["path"] == "/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0"
    assert device["modalias"] == "pci:v000010DEd00001C03sv00001458sd00003717bc03sc00i00"
    assert device["vendor"] == "NVIDIA Corporation"
    assert device["model"] == "GP106 [GeForce GTX 1060 6GB]"
    assert device["manual_install"] is False
    assert udf.is_nvidia(device)
    assert udf.recommended_driver(devices) == "nvidia-driver-470"


def test_seed_report_keeps_every_driver_line_and_its_attributes():
    drivers = _drivers(parse_devices(SEED_1804)[0])
    assert list(drivers) == [
        "nvidia-driver-418-server",
        "nvidia-driver-470",
        "nvidia-driver-460-server",
        "nvidia-driver-390",
        "nvidia-driver-460",
        "nvidia-driver-450-server",
        "xserver-xorg-video-nouveau",
    ]
    assert drivers["nvidia-driver-470"] == {
        "package": "nvidia-driver-470",
        "source": "distro",
        "free": False,
        "builtin": False,
        "recommended": True,
    }
    assert drivers["xserver-xorg-video-nouveau"] == {
        "package": "xserver-xorg-video-nouveau",
        "source": "distro",
        "free": True,
        "builtin": True,
        "recommended": False,
    }
    assert [name for name, d in drivers.items() if d["recommended"]] == ["nvidia-driver-470"]


@pytest.mark.parametrize(
    "line",
    [
        "driver   : nvidia-driver-535 - distro non-free recommended",
        "driver : nvidia-driver-535 - distro non-free recommended",
        "driver: nvidia-driver-535 - distro non-free recommended",
        "driver\t:\tnvidia-driver-535\t-\tdistro\tnon-free\trecommended",
        "   driver     :    nvidia-driver-535   -   distro   non-free   recommended   ",
        "driver   : nvidia-driver-535 -distro non-free recommended",
    ],
)
def test_spacing_variants_parse_the_same(line):
    report = f"==  /sys/devices/pci0000:00/0000:00:02.0  ==\nvendor:NVIDIA Corporation\n{line}\n"
    (device,) = parse_devices(report)
    assert device["path"] == "/sys/devices/pci0000:00/0000:00:02.0"
    assert device["vendor"] == "NVIDIA Corporation"
    assert device["drivers"] == [
        {
            "package": "nvidia-driver-535",
            "source": "distro",
            "free": False,
            "builtin": False,
            "recommended": True,
        }
    ]


def test_padded_field_names_and_values_are_trimmed():
    report = "== /sys/x ==\nmodalias   :   pci:v000010DEd000020B0sv0bc03sc02i00   \nmodel:A100\n"
    (device,) = parse_devices(report)
    assert device["modalias"] == "pci:v000010DEd000020B0sv0bc03sc02i00"
    assert device["model"] == "A100"


def test_missing_model_line_gives_none():
    report = textwrap.dedent(
        """\
        == /sys/devices/pci0000:00/0000:00:03.0/0000:02:00.0 ==
        modalias : pci:v000010DEd000020B0sv000010DEsd0000134Fbc03sc02i00
        vendor   : NVIDIA Corporation
        driver   : nvidia-driver-535-server - distro non-free
        driver   : nvidia-driver-535 - distro non-free recommended
        """
    )
    (device,) = parse_devices(report)
    assert device["model"] is None
    assert udf.is_nvidia(device)
    assert udf.recommended_driver([device]) == "nvidia-driver-535"


def test_non_nvidia_devices_noise_and_blank_lines():
    report = textwrap.dedent(
        """\
        udevadm hwdb is deprecated. Use systemd-hwdb instead.
        WARNING:root:_pkg_get_support nvidia-driver-390: package has invalid Support Legacyheader

        == /sys/devices/pci0000:00/0000:00:1c.2/0000:03:00.0 ==
        modalias : pci:v000014E4d000043B1sv00001A3Bsd00002123bc02sc80i00
        vendor   : Broadcom Inc. and subsidiaries
        model    : BCM4352 802.11ac Wireless Network Adapter
        driver   : bcmwl-kernel-source - distro non-free

        udevadm hwdb is deprecated. Use systemd-hwdb instead.

        == /sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0 ==
        modalias : pci:v000010DEd00002204sv00001458sd0000403Bbc03sc00i00
        vendor   : NVIDIA Corporation
        model    : GA102 [GeForce RTX 3090]
        manual_install: True
        driver   : nvidia-driver-535 - third party non-free recommended
        driver   : nvidia-driver-525 - distro non-free
        driver   : xserver-xorg-video-nouveau - distro free builtin

        == cpu-microcode.py ==
        driver   : intel-microcode - distro free
        """
    )
    devices = parse_devices(report)
    assert [d["path"] for d in devices] == [
        "/sys/devices/pci0000:00/0000:00:1c.2/0000:03:00.0",
        "/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0",
        "cpu-microcode.py",
    ]
    broadcom, nvidia, microcode = devices
    assert not udf.is_nvidia(broadcom)
    assert udf.is_nvidia(nvidia)
    assert not udf.is_nvidia(microcode)
    assert nvidia["manual_install"] is True
    assert broadcom["manual_install"] is False
    assert microcode["modalias"] is None and microcode["vendor"] is None
    assert _drivers(nvidia)["nvidia-driver-535"]["source"] == "third-party"
    assert _drivers(nvidia)["nvidia-driver-525"]["source"] == "distro"
    assert _drivers(broadcom)["bcmwl-kernel-source"]["free"] is False
    assert _drivers(microcode)["intel-microcode"]["free"] is True
    assert udf.recommended_driver(devices) == "nvidia-driver-535"


def test_third_party_spelled_with_a_hyphen():
    report = "== /sys/y ==\nvendor : NVIDIA\ndriver : nvidia-driver-550 - third-party free\n"
    (driver,) = parse_devices(report)[0]["drivers"]
    assert driver["source"] == "third-party"
    assert driver["free"] is True


def test_nvidia_found_by_modalias_when_vendor_is_missing():
    device = parse_devices("== /sys/z ==\nmodalias : pci:v000010deD000020B0bc03sc02i00\n")[0]
    assert device["vendor"] is None
    assert udf.is_nvidia(device)


def test_two_gpus_give_two_devices_and_one_recommendation():
    block = textwrap.dedent(
        """\
        == /sys/devices/pci0000:00/0000:00:0{n}.0/0000:0{n}:00.0 ==
        modalias : pci:v000010DEd000020B0sv000010DEsd0000134Fbc03sc02i00
        vendor   : NVIDIA Corporation
        model    : GA100 [A100 SXM4 40GB]
        driver   : nvidia-driver-535-server - distro non-free
        driver   : nvidia-driver-535 - distro non-free recommended
        """
    )
    devices = parse_devices(block.format(n=1) + "\n" + block.format(n=2))
    assert len(devices) == 2
    assert udf.recommended_driver(devices) == "nvidia-driver-535"


def test_devices_that_disagree_give_the_highest_branch():
    report = (
        "== /sys/a ==\nvendor : NVIDIA Corporation\n"
        "driver : nvidia-driver-470 - distro non-free recommended\n"
        "== /sys/b ==\nvendor : NVIDIA Corporation\n"
        "driver : nvidia-driver-1000 - distro non-free recommended\n"
    )
    assert udf.recommended_driver(parse_devices(report)) == "nvidia-driver-1000"


def test_no_recommendation_without_an_nvidia_device():
    report = "== /sys/w ==\nvendor : Broadcom\ndriver : bcmwl-kernel-source - distro recommended\n"
    assert udf.recommended_driver(parse_devices(report)) is None


@pytest.mark.parametrize(
    "text", ["", "\n\n", "udevadm hwdb is deprecated. Use systemd-hwdb instead.\n"]
)
def test_empty_or_noise_only_reports_give_no_devices(text):
    assert parse_devices(text) == []


def test_lines_before_the_first_header_are_ignored():
    report = "vendor : NVIDIA Corporation\ndriver : nvidia-driver-535 - distro recommended\n"
    assert parse_devices(report) == []


def _run_module(tmp_path: Path, args: dict, path: str | None = None) -> dict:
    """Run the module as Ansible would, with its arguments in a file; PATH as given."""
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = path
    proc = subprocess.run(
        [sys.executable, str(MODULE_PATH), str(args_file)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    return json.loads(proc.stdout)


def test_module_returns_facts_from_the_tool_and_changes_nothing(tmp_path):
    tool = tmp_path / "ubuntu-drivers"
    tool.write_text(
        "#!/bin/sh\n"
        'echo "udevadm hwdb is deprecated. Use systemd-hwdb instead." >&2\n'
        f"cat <<'EOF'\n{SEED_1804}EOF\n"
    )
    tool.chmod(0o755)
    result = _run_module(tmp_path, {"binary": str(tool), "_ansible_check_mode": True})
    assert result.get("failed") is not True, result
    assert result["changed"] is False
    facts = result["ansible_facts"]
    assert facts["ubuntu_drivers_nvidia_recommended"] == "nvidia-driver-470"
    assert len(facts["ubuntu_drivers_devices"]) == 1
    assert facts["ubuntu_drivers_nvidia_devices"] == facts["ubuntu_drivers_devices"]


def test_module_fails_with_the_exit_code_of_the_tool(tmp_path):
    tool = tmp_path / "ubuntu-drivers"
    tool.write_text("#!/bin/sh\necho 'ERROR: no apt cache' >&2\nexit 1\n")
    tool.chmod(0o755)
    result = _run_module(tmp_path, {"binary": str(tool)})
    assert result["failed"] is True
    assert "exited 1" in result["msg"]
    assert "no apt cache" in result["stderr"]


def test_docstring_example_runs():
    import doctest

    assert doctest.testmod(udf).failed == 0


def test_module_without_the_tool_fails_naming_the_package(tmp_path):
    result = _run_module(tmp_path, {}, path=str(tmp_path))
    assert result["failed"] is True
    assert "install the package ubuntu-drivers-common" in result["msg"]


def test_module_without_the_tool_in_check_mode_gives_empty_facts(tmp_path):
    # In check mode the install of ubuntu-drivers-common was only simulated.
    result = _run_module(tmp_path, {"_ansible_check_mode": True}, path=str(tmp_path))
    assert result.get("failed") is not True, result
    assert result["ansible_facts"] == {
        "ubuntu_drivers_devices": [],
        "ubuntu_drivers_nvidia_devices": [],
        "ubuntu_drivers_nvidia_recommended": None,
    }
