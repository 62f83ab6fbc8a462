"""Real torchrun launches on the CPU (2 gloo processes): checkpoints, resume, faults."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from PIL import Image

from training.checkpoint import load_file

from .conftest import TINY, Launch, clean_env, run, torchrun_cmd

pytestmark = pytest.mark.slow


def metrics(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    r = run(torchrun_cmd(*TINY, "--epochs=2", f"--output-dir={out}"))
    assert r.returncode == 0, r.stderr[-4000:]
    return out, r.stderr


def test_two_epochs_write_checkpoints_rank0_only_loadable_weights_only(two_epochs):
    out, log = two_epochs
    names = {p.name for p in out.iterdir()}
    assert {"model_0.pt", "model_1.pt", "checkpoint.pt", "checkpoint_prev.pt"} <= names
    assert {"metrics.jsonl", "tensorboard"} <= names
    assert not [n for n in names if ".tmp" in n]
    for name in ("model_0.pt", "model_1.pt"):
        saved = torch.load(out / name, weights_only=True)
        state = saved["model"]
        assert state and not [k for k in state if k.startswith(("module.", "_orig_mod."))]
        assert saved["class_names"] == ["circle", "square", "triangle"]
        assert (saved["image_size"], saved["backbone"]) == (64, "resnet10")
    ckpt = load_file(str(out / "checkpoint.pt"))
    assert ckpt["epoch"] == 2 and ckpt["step"] == 0
    assert not [k for k in ckpt["model"] if k.startswith("module.")]
    assert isinstance(ckpt["config"], dict) and ckpt["config"]["epochs"] == 2
    assert len(ckpt["rng"]) == 2  # both ranks' generator states
    # An evaluated epoch is saved before its evaluation too: _prev is that copy.
    prev = load_file(str(out / "checkpoint_prev.pt"))
    assert (prev["epoch"], prev["eval_pending"], ckpt["eval_pending"]) == (2, 1, None)
    rows = metrics(out)
    assert [r["epoch"] for r in rows] == [0, 1]
    assert all({"loss", "map", "map50", "img_per_s"} <= r.keys() for r in rows)
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out / "tensorboard"), size_guidance={"images": 0, "tensors": 0})
    acc.Reload()
    assert [e.step for e in acc.Images("val/examples")] == [0, 1]  # one per evaluation
    assert [e.step for e in acc.Tensors("val/pr_curve_iou50")] == [0, 1]
    for name in ("curves.png", "val_examples.png"):
        assert Image.open(out / name).size[0] > 300, name
    assert "no checkpoint in" in log and "done: 2 epochs; best mAP" in log
    # Only rank 0 prints INFO lines.
    assert "[rank 0/2] INFO" in log and "[rank 1/2] INFO" not in log


def test_second_launch_resumes_to_a_third_epoch(two_epochs, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(two_epochs[0], out)
    r = run(torchrun_cmd(*TINY, "--epochs=3", f"--output-dir={out}"))
    assert r.returncode == 0, r.stderr[-4000:]
    assert "resumed from epoch 2, step 0/" in r.stderr
    assert not re.search(r"epoch [01] step", r.stderr) and "epoch 2 step 4/4" in r.stderr
    assert [row["epoch"] for row in metrics(out)] == [0, 1, 2]
    assert (out / "model_2.pt").exists()


def test_corrupt_checkpoint_falls_back_to_the_previous_one(two_epochs, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(two_epochs[0], out)
    data = (out / "checkpoint.pt").read_bytes()
    (out / "checkpoint.pt").write_bytes(data[: len(data) // 2])  # truncated
    r = run(torchrun_cmd(*TINY, "--epochs=2", f"--output-dir={out}"))
    assert r.returncode == 0, r.stderr[-4000:]
    assert "checkpoint.pt is corrupt or truncated" in r.stderr
    assert "using the previous checkpoint" in r.stderr and "(epoch 2)" in r.stderr
    # _prev is the copy saved before epoch 1's evaluation: that evaluation runs again.
    assert "resumed from epoch 2, step 0/" in r.stderr and "evaluating epoch 1 first" in r.stderr
    assert not re.search(r"epoch [01] step", r.stderr)
    assert [row["epoch"] for row in metrics(out)] == [0, 1]
    assert load_file(str(out / "checkpoint.pt"))["eval_pending"] is None


def test_evaluate_and_predict_clis_on_the_saved_model(two_epochs, tmp_path):
    out, _ = two_epochs
    r = run(
        [
            sys.executable,
            "-m",
            "training.evaluate",
            f"--checkpoint={out / 'model_1.pt'}",
            "--device=cpu",
            "--workers=0",
            f"--save-detections={tmp_path / 'dt.json'}",
        ]
    )
    assert r.returncode == 0, r.stderr[-3000:]
    # No flags given: the model file says what it is and on which data it was trained.
    assert "(model file of epoch 1): backbone resnet10, image size 64, 3 classes" in r.stderr
    assert "from the file: --dataset, --seed, --val-size" in r.stderr
    lines = [ln for ln in r.stdout.splitlines() if "Average" in ln]
    assert len(lines) == 12 and lines[0].startswith(" Average Precision  (AP) @[ IoU=0.50:0.95")
    # The same number as the training run's last evaluation of that epoch.
    assert float(lines[0].split("=")[-1]) == pytest.approx(metrics(out)[-1]["map"], abs=1e-3)
    # The detections it scored are a results file the other form of evaluate takes.
    from training.data.synthetic import SyntheticDataset

    gt = SyntheticDataset(8, 64, "val").coco_gt()
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    r2 = run(
        [
            sys.executable,
            "-m",
            "training.evaluate",
            f"--annotations={tmp_path / 'gt.json'}",
            f"--detections={tmp_path / 'dt.json'}",
        ]
    )
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert r2.stdout.splitlines()[0] == lines[0]

    # Two inputs named alike in different folders, and one that is not an image.
    ds = SyntheticDataset(2, 64, "val")
    for k, folder in enumerate(("a", "b")):
        (tmp_path / folder).mkdir()
        ds.load_image(k).save(tmp_path / folder / "shapes.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"not a JPEG")
    inputs = [tmp_path / "a" / "shapes.jpg", tmp_path / "broken.jpg", tmp_path / "b" / "shapes.jpg"]
    r = run(
        [
            sys.executable,
            "-m",
            "training.predict",
            f"--checkpoint={out / 'model_1.pt'}",
            *map(str, inputs),
            f"--out={tmp_path / 'pred'}",
            "--device=cpu",
            "--score-threshold=0.0",
        ]
    )
    # The bad image is skipped with one warning, the others are drawn, and the run exits 2.
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    assert f"warning: {tmp_path / 'broken.jpg'}: skipped" in r.stderr
    assert "error: 1 of 3 images could not be read" in r.stderr
    # The model file said what it is: no flags were needed for names and size.
    assert "image size 64, classes circle, square, triangle" in r.stderr
    drawn = {f: Image.open(tmp_path / "pred" / f"{f}_shapes.png") for f in ("a", "b")}
    assert sorted(p.name for p in (tmp_path / "pred").iterdir()) == [
        "a_shapes.png",
        "b_shapes.png",
    ]
    assert drawn["a"].size == (64, 64)
    assert drawn["a"].tobytes() != drawn["b"].tobytes()
    assert "a/shapes.jpg:" in r.stdout and "b/shapes.jpg:" in r.stdout
    assert re.search(r"^  (circle|square|triangle) \d\.\d\d \[", r.stdout, re.M)


def test_max_restarts_recovers_from_a_killed_worker(tmp_path):
    out = tmp_path / "out"
    cmd = torchrun_cmd(*TINY, "--train-size=96", "--epochs=2", f"--output-dir={out}")
    cmd.insert(cmd.index("-m", 3), "--max-restarts=1")
    launch = Launch(cmd)
    deadline = time.monotonic() + 90
    while not (out / "checkpoint.pt").exists():
        assert time.monotonic() < deadline and launch.proc.poll() is None, launch.output[-3000:]
        time.sleep(0.05)
    victim = launch.workers()[-1]
    subprocess.run(["kill", "-9", str(victim)], check=True, timeout=10)
    assert launch.wait(150) == 0, launch.output[-4000:]
    assert "resumed from epoch 1" in launch.output
    assert [r["epoch"] for r in metrics(out)] == [0, 1]
    assert load_file(str(out / "checkpoint.pt"))["epoch"] == 2


def _sigterm_mid_epoch(tmp_path, send):
    out = tmp_path / "out"
    args = (*TINY, "--train-size=320", "--epochs=1", f"--output-dir={out}")
    launch = Launch(torchrun_cmd(*args))
    launch.wait_for(r"epoch 0 step 3/40", 90)
    t0 = time.monotonic()
    send(launch)
    rc = launch.wait(60)
    elapsed = time.monotonic() - t0
    ckpt = load_file(str(out / "checkpoint.pt"))
    assert ckpt["epoch"] == 0 and 3 <= ckpt["step"] < 40, ckpt["step"]
    assert elapsed < 20
    return out, rc, launch, ckpt["step"]


def test_sigterm_mid_epoch_checkpoints_exits_0_and_resumes_mid_way(tmp_path):
    # torchrun's way: the workers get SIGTERM.
    def to_workers(launch):
        for pid in launch.workers():
            os.kill(pid, signal.SIGTERM)

    out, rc, launch, step = _sigterm_mid_epoch(tmp_path, to_workers)
    assert rc == 0, launch.output[-3000:]
    assert "stopped by SIGTERM at epoch 0" in launch.output
    r = run(torchrun_cmd(*TINY, "--train-size=320", "--epochs=1", f"--output-dir={out}"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"resumed from epoch 0, step {step}/40" in r.stderr
    assert f"epoch 0 step {step + 1}/40" in r.stderr and "epoch 0 step 1/40" not in r.stderr
    assert [row["epoch"] for row in metrics(out)] == [0]


def test_sigterm_between_reads_stops_every_rank_at_the_next_read_and_loses_nothing(tmp_path):
    """Flags read every 4 steps (as on GPUs, where --sync-every is --log-every): the workers'
    SIGTERM takes effect at the next read, the same step on both ranks, and the resume goes on
    from there."""
    out = tmp_path / "out"
    flags = ("--log-every=4", "--sync-every=4")
    args = (*TINY, "--train-size=320", "--epochs=1", *flags, f"--output-dir={out}")
    launch = Launch(torchrun_cmd(*args))
    launch.wait_for(r"epoch 0 step 4/40", 90)
    for pid in launch.workers():
        os.kill(pid, signal.SIGTERM)
    assert launch.wait(60) == 0, launch.output[-3000:]
    step = load_file(str(out / "checkpoint.pt"))["step"]
    assert step % 4 == 0 and 4 < step < 40, step
    assert f"stopped by SIGTERM at epoch 0 step {step}; checkpoint written" in launch.output
    r = run(torchrun_cmd(*args))
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"resumed from epoch 0, step {step}/40" in r.stderr
    assert f"epoch 0 step {step + 4}/40" in r.stderr
    assert [row["epoch"] for row in metrics(out)] == [0]


def test_sigterm_to_the_whole_group_as_systemctl_stop_does(tmp_path):
    out, rc, launch, _ = _sigterm_mid_epoch(
        tmp_path, lambda launch: os.killpg(launch.proc.pid, signal.SIGTERM)
    )
    # The workers checkpoint and exit 0 (checked above); torchrun itself reports the signal.
    assert "stopped by SIGTERM at epoch 0" in launch.output
    assert launch.output.count("exiting") >= 1
    assert rc in (0, 1, -signal.SIGTERM, 128 + signal.SIGTERM), rc


def test_ctrl_c_is_a_stop_request_on_every_rank_checkpoint_then_exit_130(tmp_path):
    # The terminal's way: SIGINT to the whole process group (torchrun forwards it as well).
    out, rc, launch, step = _sigterm_mid_epoch(
        tmp_path, lambda launch: os.killpg(launch.proc.pid, signal.SIGINT)
    )
    for rank in (0, 1):
        assert f"[rank {rank}/2] WARNING SIGINT: finishing this step" in launch.output
    assert f"stopped by SIGINT at epoch 0 step {step}; checkpoint written" in launch.output
    assert "second Ctrl-C" not in launch.output  # torchrun's forwarded copy is the same request
    assert "KeyboardInterrupt" not in launch.output
    assert rc != 0, launch.output[-3000:]  # torchrun reports the interrupt (wrapper: SIGINT)
    assert not [p for p in out.iterdir() if ".tmp." in p.name]


def test_nonfinite_loss_on_one_rank_is_skipped_then_repeated_ones_stop_every_rank(tmp_path):
    out = tmp_path / "out"
    # Step 1: rank 1 alone; steps 5-7 (epoch 1): one rank or the other, three in a row.
    env = clean_env(TRAINING_TEST_NONFINITE="1:1,0:5,1:6,0:7")
    args = (*TINY, "--epochs=3", "--max-nonfinite=3", f"--output-dir={out}")
    r = run(torchrun_cmd(*args), env=env, timeout=90)
    expected = "non-finite loss at step 1 (epoch 0) on 1 of 2 ranks; step skipped on all ranks"
    assert expected in r.stderr
    rows = metrics(out)
    assert len(rows) == 1 and rows[0]["skipped_steps"] == 1  # epoch 0 went on and finished
    assert r.returncode != 0
    for rank in (0, 1):
        expected = f"[rank {rank}/2] ERROR stopping: 3 consecutive steps with a non-finite loss"
        assert expected in r.stderr


def test_bad_data_stops_every_rank_with_the_same_message(tmp_path):
    (tmp_path / "classes.csv").write_text("cat,0\n")
    (tmp_path / "train.csv").write_text("gone.png,0,0,5,5,cat\nx.png,1,2\n")
    args = (
        *TINY,
        "--dataset=csv",
        f"--train-csv={tmp_path / 'train.csv'}",
        f"--val-csv={tmp_path / 'train.csv'}",
        f"--classes-csv={tmp_path / 'classes.csv'}",
        f"--output-dir={tmp_path / 'out'}",
    )
    r = run(torchrun_cmd(*args), timeout=90)
    assert r.returncode != 0
    # Every rank stops with status 2 (a user mistake) and no traceback of its own; torchrun
    # reports the failed group (its traceback is torchrun's, not the job's). A rank that is
    # still closing when the first has exited may be ended by torchrun's SIGTERM (-15).
    codes = {int(c) for c in re.findall(r"exitcode\s+:\s+(-?\d+)", r.stderr)}
    assert 2 in codes and codes <= {2, -signal.SIGTERM}, r.stderr[-3000:]
    assert "[rank0]: Traceback" not in r.stderr and "[rank1]: Traceback" not in r.stderr
    msgs = []
    for rank in (0, 1):
        tag = f"[rank {rank}/2] error: "
        start = r.stderr.index(tag) + len(tag)
        msgs.append(r.stderr[start:].split("\n", 3)[:3])
    assert msgs[0] == msgs[1]
    assert "train.csv:2: expected 6 fields" in "\n".join(msgs[0])
    assert "gone.png: missing file" in r.stderr
    assert not (tmp_path / "out" / "checkpoint.pt").exists()


def _tb_losses(out) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    return [e.value for e in acc.Scalars("train/loss")]


def test_default_fast_settings_match_the_seed_recipe(tmp_path):
    """Same seed and data: defaults (the batched loss among them) vs the seed's fp32,
    find_unused_parameters=True and torchvision's loss, step by step."""
    plain_flags = ("--find-unused-parameters", "--no-amp", "--loss=torchvision")
    losses = []
    for name, extra in (("fast", ()), ("plain", plain_flags)):
        out = tmp_path / name
        args = (*TINY, "--train-size=24", "--epochs=1", f"--output-dir={out}", *extra)
        r = run(torchrun_cmd(*args))
        assert r.returncode == 0, r.stderr[-3000:]
        losses.append(_tb_losses(out))
    fast, plain = losses
    assert len(fast) == len(plain) == 3
    assert fast == pytest.approx(plain, rel=1e-5, abs=1e-6)


def test_sigterm_while_rank0_scores_stops_every_rank_at_once_and_keeps_the_epoch(tmp_path):
    """pycocotools cannot check the stop flag and scores a COCO-size set for minutes
    (TRAINING_TEST_SLOW_SCORING stands in for that on rank 0): a SIGTERM stops the scoring at
    once, no rank waits in a collective, and the epoch's training is kept; the next launch
    evaluates that epoch first."""
    out = tmp_path / "out"
    args = (*TINY, "--epochs=1", f"--output-dir={out}")
    launch = Launch(torchrun_cmd(*args), env=clean_env(TRAINING_TEST_SLOW_SCORING="300"))
    launch.wait_for(r"TRAINING_TEST_SLOW_SCORING: scoring", 120)
    t0 = time.monotonic()
    for pid in launch.workers():
        os.kill(pid, signal.SIGTERM)
    rc = launch.wait(60)
    assert rc == 0, launch.output[-3000:]
    assert time.monotonic() - t0 < 20
    assert "stopped by SIGTERM while evaluating epoch 0; checkpoint written" in launch.output
    state = load_file(str(out / "checkpoint.pt"))
    assert (state["epoch"], state["step"], state["eval_pending"]) == (1, 0, 0)
    assert not (out / "model_0.pt").exists()  # written with its mAP, after the evaluation

    r = run(torchrun_cmd(*args))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed from epoch 1, step 0/4" in r.stderr and "epoch 0 step" not in r.stderr
    assert "evaluating epoch 0 first" in r.stderr
    rows = metrics(out)
    assert [row["epoch"] for row in rows] == [0] and rows[0]["map"] is not None
    assert (out / "model_0.pt").exists()
    assert load_file(str(out / "checkpoint.pt"))["eval_pending"] is None
