#!/usr/bin/python
"""Ansible module: run `ubuntu-drivers devices` and return its report as facts."""

from __future__ import annotations

import re

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
---
module: ubuntu_drivers_facts
short_description: Report the devices and driver packages that ubuntu-drivers knows about
description:
  - Runs C(ubuntu-drivers devices) (package ubuntu-drivers-common) and parses its report into
    facts, one entry per device, with the driver packages the tool offers for it.
  - Tolerates the variations between Ubuntu releases, missing C(model) lines, non-NVIDIA
    devices, blank lines and noise such as C(udevadm hwdb is deprecated).
  - Reads only; it never changes the host, so it runs unchanged in check mode. In check mode
    a missing ubuntu-drivers gives empty facts instead of an error (its install before was
    only simulated).
options:
  binary:
    description: Path of the ubuntu-drivers executable; found on PATH when not given.
    type: path
author: ddp-cluster
"""

EXAMPLES = r"""
- name: Read what ubuntu-drivers recommends
  ubuntu_drivers_facts:

- name: Show the recommended NVIDIA driver package
  ansible.builtin.debug:
    var: ubuntu_drivers_nvidia_recommended
"""

RETURN = r"""
ansible_facts:
  description: Facts set by the module.
  returned: always
  type: dict
  contains:
    ubuntu_drivers_devices:
      description: >-
        Every device in the report: path, modalias, vendor, model (null when absent),
        manual_install (bool) and drivers, a list of dicts with package, source
        (distro or third-party), free, builtin and recommended.
      type: list
      elements: dict
    ubuntu_drivers_nvidia_devices:
      description: The NVIDIA devices among them (PCI vendor 10de).
      type: list
      elements: dict
    ubuntu_drivers_nvidia_recommended:
      description: The nvidia-driver package ubuntu-drivers recommends, or null when none.
      type: str
"""

_HEADER = re.compile(r"^\s*==\s*(?P<path>.*?)\s*==\s*$")
_FIELD = re.compile(r"^\s*(?P<key>[A-Za-z_]+)\s*:\s*(?P<value>.*?)\s*$")
_DRIVER = re.compile(r"^(?P<package>[a-z0-9][a-z0-9.+-]*)(?:\s+-\s*(?P<attrs>.*))?$")
_NVIDIA_MODALIAS = re.compile(r"^pci:v000010de", re.IGNORECASE)
_BRANCH = re.compile(r"^nvidia-driver-(?P<branch>\d+)")
_DEVICE_KEYS = ("modalias", "vendor", "model", "manual_install")


def _parse_driver(value: str) -> dict | None:
    """Parse `<package> - <distro|third party> <free|non-free>[ builtin][ recommended]`."""
    match = _DRIVER.match(value.strip())
    if match is None:
        return None
    attrs = " ".join((match.group("attrs") or "").lower().split())
    words = set(attrs.replace("third party", "third-party").split())
    return {
        "package": match.group("package"),
        "source": "third-party" if words & {"third-party", "thirdparty"} else "distro",
        "free": "free" in words and "non-free" not in words,
        "builtin": "builtin" in words,
        "recommended": "recommended" in words,
    }


def parse_devices(text: str) -> list[dict]:
    """Parse the report of `ubuntu-drivers devices` into one dict per device.

    Each device has the keys path, modalias, vendor, model, manual_install and drivers; a
    field the report leaves out is None (manual_install: False). Lines outside a device
    block and lines that are not `key : value` (warnings, deprecation notices) are ignored.

    >>> report = '''== /sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0 ==
    ... modalias : pci:v000010DEd00001E84sv00001462sd00003752bc03sc00i00
    ... vendor   : NVIDIA Corporation
    ... driver   : nvidia-driver-470 - distro non-free recommended
    ... driver   : xserver-xorg-video-nouveau - distro free builtin
    ... '''
    >>> [d["package"] for d in parse_devices(report)[0]["drivers"] if d["recommended"]]
    ['nvidia-driver-470']
    """
    devices: list[dict] = []
    current: dict | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        header = _HEADER.match(line)
        if header is not None:
            current = {
                "path": header.group("path"),
                "modalias": None,
                "vendor": None,
                "model": None,
                "manual_install": False,
                "drivers": [],
            }
            devices.append(current)
            continue
        field = _FIELD.match(line)
        if current is None or field is None:
            continue
        key, value = field.group("key").lower(), field.group("value")
        if key == "driver":
            driver = _parse_driver(value)
            if driver is not None:
                current["drivers"].append(driver)
        elif key == "manual_install":
            current["manual_install"] = value.strip().lower() in ("true", "yes", "1")
        elif key in _DEVICE_KEYS:
            current[key] = value
    return devices


def is_nvidia(device: dict) -> bool:
    """True for an NVIDIA device: PCI vendor 10de in the modalias, or NVIDIA as vendor."""
    if _NVIDIA_MODALIAS.match(device.get("modalias") or ""):
        return True
    return "nvidia" in (device.get("vendor") or "").lower()


def recommended_driver(devices: list[dict]) -> str | None:
    """The nvidia-driver package marked recommended; the highest branch if devices disagree."""
    names = {
        driver["package"]
        for device in devices
        if is_nvidia(device)
        for driver in device["drivers"]
        if driver["recommended"] and _BRANCH.match(driver["package"])
    }
    if not names:
        return None
    return max(names, key=lambda name: (int(_BRANCH.match(name).group("branch")), name))


def main() -> None:
    module = AnsibleModule(
        argument_spec={"binary": {"type": "path"}},
        supports_check_mode=True,
    )
    binary = module.params["binary"] or module.get_bin_path("ubuntu-drivers")
    if not binary and module.check_mode:
        # In check mode the install of ubuntu-drivers-common before this was only simulated.
        module.exit_json(
            changed=False,
            ansible_facts={
                "ubuntu_drivers_devices": [],
                "ubuntu_drivers_nvidia_devices": [],
                "ubuntu_drivers_nvidia_recommended": None,
            },
            msg="check mode: ubuntu-drivers is not installed yet",
        )
    if not binary:
        module.fail_json(
            msg="ubuntu-drivers was not found on PATH: install the package ubuntu-drivers-common"
        )
    rc, out, err = module.run_command(
        [binary, "devices"], environ_update={"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    )
    if rc != 0:
        module.fail_json(msg=f"{binary} devices exited {rc}", rc=rc, stdout=out, stderr=err)
    devices = parse_devices(out)
    nvidia = [device for device in devices if is_nvidia(device)]
    recommended = recommended_driver(nvidia)
    offered = {
        d["package"]
        for n in nvidia
        for d in n["drivers"]
        if d["recommended"] and _BRANCH.match(d["package"])
    }
    if len(offered) > 1:
        module.warn(f"NVIDIA devices disagree on the recommended driver; using {recommended}")
    module.exit_json(
        changed=False,
        ansible_facts={
            "ubuntu_drivers_devices": devices,
            "ubuntu_drivers_nvidia_devices": nvidia,
            "ubuntu_drivers_nvidia_recommended": recommended,
        },
        stderr=err,
    )


if __name__ == "__main__":
    main()
