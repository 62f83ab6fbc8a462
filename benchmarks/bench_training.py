"""Training throughput: the seed's plain DDP recipe against this job's settings, same run.

Each configuration is a real torchrun launch of `python -m training` for one short epoch;
the number is the epoch's images per second from metrics.jsonl (all processes together).

    python benchmarks/bench_training.py                  # CPU: 2 gloo processes
    python benchmarks/bench_training.py --device cuda    # GPUs: one process each, nccl

On CPUs it compares the plain recipe (find_unused_parameters=True) with the defaults and
with channels-last; on GPUs fp32 plain, fp32 defaults, and bf16 autocast + channels-last.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CONFIGS = {
    "cpu": {
        "plain (fp32, find_unused_parameters)": ["--find-unused-parameters"],
        "defaults": [],
        "defaults + channels-last": ["--channels-last"],
    },
    "cuda": {
        "plain (fp32, find_unused_parameters)": ["--find-unused-parameters"],
        "defaults (fp32)": [],
        "bf16 autocast + channels-last": ["--amp", "--channels-last"],
    },
}


def launch(flags: list[str], nproc: int, timeout: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as out:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nnodes=1",
            f"--nproc-per-node={nproc}",
            "-m",
            "training",
            "--epochs=1",
            "--resume=none",
            "--progress=log",
            "--log-every=1000",
            f"--output-dir={out}",
            *flags,
        ]
        env = {**os.environ, "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)
        wall = time.perf_counter() - t0
        if r.returncode:
            sys.exit(f"launch failed ({' '.join(flags)}):\n{r.stderr[-3000:]}")
        row = json.loads(Path(out, "metrics.jsonl").read_text().splitlines()[-1])
        return row["img_per_s"], wall


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--nproc", type=int, help="processes (cpu 2, cuda: every GPU)")
    p.add_argument("--image-size", type=int, help="default: 128 on cpu, 512 on cuda")
    p.add_argument("--train-size", type=int, help="images in the epoch (cpu 320, cuda 2048)")
    p.add_argument("--backbone", help="default: the job's default for the device")
    p.add_argument("--timeout", type=int, default=600)
    args = p.parse_args()
    cuda = args.device == "cuda"
    if cuda:
        import torch

        nproc = args.nproc or torch.cuda.device_count()
    else:
        nproc = args.nproc or 2
    common = [
        f"--device={args.device}",
        f"--image-size={args.image_size or (512 if cuda else 128)}",
        f"--train-size={args.train_size or (2048 if cuda else 320)}",
        "--val-size=16",
    ]
    if args.backbone:
        common.append(f"--backbone={args.backbone}")
    print(f"training throughput, {nproc} {args.device} process(es): {' '.join(common)}")
    results = {}
    for name, flags in CONFIGS[args.device].items():
        img_s, wall = launch(common + flags, nproc, args.timeout)
        results[name] = img_s
        print(f"  {name:40s} {img_s:8.1f} img/s   (launch {wall:5.1f} s)", flush=True)
    base = next(iter(results.values()))
    for name, value in list(results.items())[1:]:
        print(f"  ratio {name} / plain: {value / base:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
