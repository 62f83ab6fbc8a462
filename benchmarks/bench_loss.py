"""RetinaNet loss, forward + backward: torchvision's compute_loss against training.loss.

Both run in the same process on the same batch (16 images by default): the synthetic dataset's
boxes, random head outputs around the classifier's prior, anchors of the model's generator.
Two shapes: the project's CPU model (resnet10: P3-P5, anchors 16-64 px, 128 px images) and the
standard RetinaNet anchor set of resnet18/34/50 (P3-P7, anchors 32-512 px) at a small size.
Times are medians of interleaved repeats (so both see the same machine load); ops are the aten
ops dispatched in one forward + backward, syncs those that read device data on the host.

    python benchmarks/bench_loss.py                 # CPU, 16 images, both shapes
    python benchmarks/bench_loss.py --threads 1 --clock cpu  # steadier on a shared machine
    python benchmarks/bench_loss.py --device cuda   # the same on a GPU (times synchronised)

On a machine shared with other jobs, two OpenMP threads wait for each other whenever one is
descheduled (wall times several times the CPU times); one thread and its CPU time measure the
code rather than the neighbours.

Targets (issue 10, CPU, 16 images): the batched loss at least 1.5x faster than torchvision's,
with at most a fifth of its dispatched ops.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.anchors import canvas_anchors  # noqa: E402
from training.data.synthetic import SyntheticDataset  # noqa: E402
from training.loss import RetinaNetLoss, pad_targets  # noqa: E402
from training.model import build_model  # noqa: E402
from training.opcount import OpRecorder  # noqa: E402

SHAPES = {
    "cpu model (resnet10)": ("resnet10", 128),
    "R50-FPN anchors": ("resnet50", 256),
}


def synthetic_targets(n: int, size: int, device) -> list[dict]:
    records = SyntheticDataset(n, size, "train", seed=0).records
    return [
        {
            "boxes": torch.from_numpy(r.boxes).float().to(device),
            "labels": torch.from_numpy(r.labels).to(device),
        }
        for r in records
    ]


def measure(args, backbone: str, size: int) -> dict:
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_model(backbone, args.classes, size).to(device)
    anchors = canvas_anchors(model, (size, size), device)
    n, a = args.images, anchors.shape[0]
    targets = synthetic_targets(n, size, device)
    padded = pad_targets(targets)
    logits = (torch.randn(n, a, args.classes, device=device) * 2 - 4.6).requires_grad_()
    regression = (torch.randn(n, a, 4, device=device) * 0.5).requires_grad_()
    criterion = RetinaNetLoss.from_model(model)

    def torchvision_loss():
        outputs = {"cls_logits": logits, "bbox_regression": regression}
        losses = model.compute_loss(targets, outputs, [anchors] * n)
        (losses["classification"] + losses["bbox_regression"]).backward()

    def batched_loss(pad: bool):
        def run():
            t = pad_targets(targets) if pad else padded
            losses = criterion(logits, regression, anchors, t)
            (losses["classification"] + losses["bbox_regression"]).backward()

        return run

    runs = {
        "torchvision": torchvision_loss,
        "batched": batched_loss(pad=False),
        "batched+pad": batched_loss(pad=True),
    }
    times = {k: [] for k in runs}
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    for i in range(args.warmup + args.repeats):
        for name, fn in runs.items():
            logits.grad = regression.grad = None
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = clock()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= args.warmup:
                times[name].append(clock() - t0)
    counts, faults = {}, {}
    for name, fn in runs.items():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        fn()
        faults[name] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        with OpRecorder() as rec:
            fn()
        counts[name] = (rec.total, sum(rec.syncs.values()))
    return {
        "anchors": a,
        "boxes": sum(len(t["boxes"]) for t in targets) / n,
        "ms": {k: 1e3 * statistics.median(v) for k, v in times.items()},
        "counts": counts,
        "faults": faults,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--classes", type=int, default=3, help="3: the synthetic dataset's")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: this thread's CPU time (with --threads 1: steadier on a shared machine)",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"RetinaNet loss forward + backward, {args.images} images, {args.classes} classes, "
        f"device {args.device}, {torch.get_num_threads()} CPU threads, {args.clock} clock, "
        f"torch {torch.__version__}"
    )
    header = (
        f"{'shape':<26} {'anchors':>7} {'boxes/img':>9} {'torchvision':>11} {'batched':>8} "
        f"{'+pad':>7} {'speedup':>7} {'ops tv':>7} {'ops ours':>8} {'ops ratio':>9} "
        f"{'syncs tv/ours':>13} {'faults tv/ours':>14}"
    )
    print(header)
    print("-" * len(header))
    ok = True
    for label, (backbone, size) in SHAPES.items():
        r = measure(args, backbone, size)
        ms, counts = r["ms"], r["counts"]
        speedup = ms["torchvision"] / ms["batched"]
        (ops_tv, syncs_tv), (ops_ours, syncs_ours) = counts["torchvision"], counts["batched"]
        faults_tv, faults_ours = r["faults"]["torchvision"], r["faults"]["batched"]
        ok &= speedup >= 1.5 and ops_ours * 5 <= ops_tv and syncs_ours == 0
        print(
            f"{label + f' {size}px':<26} {r['anchors']:>7} {r['boxes']:>9.1f} "
            f"{ms['torchvision']:>9.2f}ms {ms['batched']:>6.2f}ms {ms['batched+pad']:>5.2f}ms "
            f"{speedup:>6.2f}x {ops_tv:>7} {ops_ours:>8} {ops_tv / ops_ours:>8.1f}x "
            f"{f'{syncs_tv}/{syncs_ours}':>13} "
            f"{f'{faults_tv}/{faults_ours}':>14}"
        )
    print(
        "times: medians of interleaved repeats; +pad: including pad_targets (which a loader's "
        "collate would do); speedup = torchvision / batched; faults: minor page faults in one "
        "call (fresh large CPU tensors; in a training step the heap is already grown)"
    )
    print(f"targets (>= 1.5x faster, <= 1/5 of the ops, 0 syncs): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
