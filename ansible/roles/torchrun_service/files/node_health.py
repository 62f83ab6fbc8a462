#!/usr/bin/env python3
"""What the health gate checks on one node without other nodes or training code.

    python3 node_health.py OUTPUT_DIR

Prints one JSON object: `gpus` (nvidia-smi's GPUs with uncorrectable volatile ECC errors,
pending retired pages and pending or failed row remaps; [] without nvidia-smi or GPUs),
`free_gib` in OUTPUT_DIR (or its nearest existing parent), `clock_synchronized` (the kernel's
NTP status through adjtimex(2), as `timedatectl`'s NTPSynchronized reads it) and `time` (this
node's clock, which the controller compares with its own). Standard library only.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
import time

STA_UNSYNC = 0x0040
TIME_ERROR = 5


class Timex(ctypes.Structure):
    # struct timex of <sys/timex.h> on 64-bit Linux: modes, then longs, then padding.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("rest", ctypes.c_long * 32),
    ]


def clock_synchronized() -> bool:
    """True when the kernel's clock is NTP-disciplined (systemd's ntp_synced() rule)."""
    tx = Timex()
    state = ctypes.CDLL(None, use_errno=True).adjtimex(ctypes.byref(tx))
    return state != TIME_ERROR and not tx.status & STA_UNSYNC and tx.maxerror < 16_000_000


def _smi(*args: str) -> list[list[str]]:
    try:
        out = subprocess.run(
            ["nvidia-smi", *args, "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if out.returncode != 0:
        return []
    return [[c.strip() for c in line.split(",")] for line in out.stdout.splitlines() if line]


def _count(value: str) -> int:
    """nvidia-smi's number, or 'Yes'/'No', or '[N/A]'/'N/A' (not supported: nothing to count)."""
    if value.isdigit():
        return int(value)
    return 1 if value.lower() == "yes" else 0


def gpus() -> list[dict]:
    rows = _smi(
        "--query-gpu=index,pci.bus_id,name,ecc.errors.uncorrected.volatile.total,"
        "retired_pages.pending"
    )
    remaps = {
        r[0]: r
        for r in _smi(
            "--query-remapped-rows=gpu_bus_id,remapped_rows.pending,remapped_rows.failure"
        )
        if len(r) == 3
    }
    found = []
    for row in rows:
        if len(row) != 5:
            continue
        index, bus, name, ecc, retired = row
        remap = remaps.get(bus, [bus, "0", "0"])
        found.append(
            {
                "index": int(index) if index.isdigit() else index,
                "bus_id": bus,
                "name": name,
                "ecc_uncorrected": _count(ecc),
                "remap_pending": bool(_count(retired) or _count(remap[1]) or _count(remap[2])),
            }
        )
    return found


def free_gib(path: str) -> float:
    while not os.path.exists(path):
        path = os.path.dirname(path) or "/"
    return round(shutil.disk_usage(path).free / 2**30, 1)


def main(argv: list[str]) -> int:
    output_dir = argv[1] if len(argv) > 1 else "/"
    report = {
        "gpus": gpus(),
        "output_dir": output_dir,
        "free_gib": free_gib(output_dir),
        "clock_synchronized": clock_synchronized(),
        "time": time.time(),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
