#!/usr/bin/env python3
"""Initialise CUDA on every GPU through libcuda (the driver API), without torch.

    python3 cuda_probe.py [--library libcuda.so.1] [--expect N]

Calls cuInit(0), cuDeviceGetCount, then for each device cuDeviceGet, cuDeviceGetName and
cuDevicePrimaryCtxRetain/Release: a context on every GPU is what a training job needs first,
and it fails where nvidia-smi still looks healthy (error 802 on an NVSwitch system whose
fabric manager is not running). Prints one JSON object and exits 0 when every call succeeded
(and the count is N when --expect is given), 1 otherwise, naming the failed call, the CUDA error
and what it usually means. Standard library only, so any node's python3 runs it; the
nvidia_driver role runs it after the reboot, and a health check can run it before a job.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import sys

# What the CUDA errors a fresh node reports usually mean (cuda.h names them).
HINTS = {
    100: "no CUDA-capable device: the nvidia module is not loaded or found no usable GPU",
    802: "system not yet initialized: on an NVSwitch (HGX) node, nvidia-fabricmanager is not "
    "running at the driver's version",
    803: "the loaded kernel module is not the installed libcuda's version: reboot to load it",
    999: "unknown error: see dmesg (NVRM lines)",
}


class ProbeError(Exception):
    def __init__(self, call: str, code: int, name: str, text: str):
        super().__init__(f"{call} failed with {code} {name}: {text}")
        self.report = {"ok": False, "call": call, "error": code, "name": name, "text": text}
        if code in HINTS:
            self.report["hint"] = HINTS[code]


def _error_strings(lib, code: int) -> tuple[str, str]:
    name, text = ctypes.c_char_p(), ctypes.c_char_p()
    if lib.cuGetErrorName(code, ctypes.byref(name)) != 0 or not name.value:
        return f"CUDA error {code}", ""
    lib.cuGetErrorString(code, ctypes.byref(text))
    return name.value.decode(), (text.value or b"").decode()


def probe(library: str) -> dict:
    """Initialise CUDA and a primary context on every device; raise ProbeError on failure."""
    try:
        lib = ctypes.CDLL(library)
    except OSError as err:
        raise ProbeError("dlopen", -1, "LIBRARY_NOT_FOUND", str(err)) from None

    def call(name: str, *args) -> None:
        code = getattr(lib, name)(*args)
        if code != 0:
            raise ProbeError(name, code, *_error_strings(lib, code))

    call("cuInit", 0)
    version = ctypes.c_int()
    call("cuDriverGetVersion", ctypes.byref(version))
    count = ctypes.c_int()
    call("cuDeviceGetCount", ctypes.byref(count))
    devices = []
    for ordinal in range(count.value):
        device = ctypes.c_int()
        call("cuDeviceGet", ctypes.byref(device), ordinal)
        name = ctypes.create_string_buffer(256)
        call("cuDeviceGetName", name, len(name), device)
        context = ctypes.c_void_p()
        call("cuDevicePrimaryCtxRetain", ctypes.byref(context), device)
        call("cuDevicePrimaryCtxRelease", device)
        devices.append({"index": ordinal, "name": name.value.decode()})
    cuda = f"{version.value // 1000}.{version.value % 1000 // 10}"
    return {"ok": True, "cuda_version": cuda, "count": len(devices), "devices": devices}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", default="libcuda.so.1", help="libcuda to load")
    parser.add_argument("--expect", type=int, help="number of GPUs there must be")
    args = parser.parse_args(argv)
    try:
        report = probe(args.library)
    except ProbeError as err:
        print(json.dumps(err.report))
        return 1
    if args.expect is not None and report["count"] != args.expect:
        report.update(ok=False, hint=f"CUDA sees {report['count']} GPU(s), expected {args.expect}")
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
