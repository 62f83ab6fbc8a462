"""Resume and restart are safe: harmless changes are named and accepted, --start-over moves a
run aside (nothing deleted), metrics.jsonl and TensorBoard never mix two runs, elapsed_s goes
on across a resume. (Refused resumes are rows of the table in test_errors.py.)"""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import pytest

from training import run_dir
from training.checkpoint import load_file
from training.errors import UsageError

from . import conftest
from .conftest import clean_env, run

# The shared tiny settings with a smaller dataset: these tests train more than once.
TINY = [*conftest.TINY, "--train-size=16", "--val-size=4"]


def _rows(out):
    return [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_more_epochs_resume_start_over_moves_the_run_aside(tmp_path):
    out = tmp_path / "out"
    train = [sys.executable, "-m", "training", *TINY, f"--output-dir={out}"]
    assert run([*train, "--epochs=1"]).returncode == 0
    first = _rows(out)
    r = run([*train, "--epochs=2"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming with changed flags (harmless for the saved state): --epochs 1 -> 2" in r.stderr
    rows = _rows(out)
    assert [row["epoch"] for row in rows] == [0, 1]
    assert rows[1]["elapsed_s"] > first[0]["elapsed_s"]  # the clock went on, not from zero
    assert load_file(str(out / "checkpoint.pt"))["elapsed_s"] >= rows[1]["elapsed_s"] - 0.1

    r = run([*train, "--epochs=1", "--start-over"])
    assert r.returncode == 0, r.stderr[-3000:]
    (aside,) = (out / "previous").iterdir()
    assert "--start-over: moved the previous run" in r.stderr and str(aside) in r.stderr
    assert [row["epoch"] for row in _rows(aside)] == [0, 1]  # kept whole
    assert {"checkpoint.pt", "model_0.pt", "model_1.pt", "model_best.pt"} <= {
        p.name for p in aside.iterdir()
    }
    assert [row["epoch"] for row in _rows(out)] == [0]  # the new run alone
    assert len(list((out / "tensorboard").iterdir())) == 1
    assert load_file(str(out / "checkpoint.pt"))["epoch"] == 1

    # torchrun restarting the group runs the same flags again: --start-over must not discard
    # the run it is restarting.
    r = run([*train, "--epochs=2", "--start-over"], env=clean_env(TORCHELASTIC_RESTART_COUNT="1"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "--start-over ignored on torchrun's restart 1: resuming this run" in r.stderr
    assert "resumed from epoch 1" in r.stderr and len(list((out / "previous").iterdir())) == 1


def test_metrics_of_epochs_past_the_checkpoint_are_dropped_on_resume(tmp_path):
    lines = [json.dumps({"epoch": e, "loss": 1.0}) + "\n" for e in (0, 1, 2)]
    (tmp_path / "metrics.jsonl").write_text("".join(lines))
    run_dir.truncate_metrics(str(tmp_path), start_epoch=1)  # resumed from checkpoint_prev.pt
    assert (tmp_path / "metrics.jsonl").read_text() == lines[0]


def _args(**kw):
    base = dict(
        optimizer="adamw",
        backbone="resnet10",
        image_size=64,
        batch_size=8,
        frozen_bn=False,
        epochs=3,
        lr=0.002,
        output_dir="out",
        workers=0,
    )
    return SimpleNamespace(**{**base, **kw})


def test_check_resume_names_what_differs_and_lets_harmless_changes_pass(caplog):
    config = vars(_args())
    with pytest.raises(UsageError, match=r"--batch-size 8 -> 16, --frozen-bn False -> True"):
        run_dir.check_resume(config, _args(batch_size=16, frozen_bn=True), "ck.pt")
    with caplog.at_level("INFO", logger="training"):
        run_dir.check_resume(config, _args(epochs=5, lr=0.001, workers=4), "ck.pt")
    assert "--epochs 3 -> 5, --lr 0.002 -> 0.001" in caplog.text
    assert "workers" not in caplog.text  # how the process runs, not what it trains
    with pytest.raises(UsageError, match="trained on classes cat, dog; the data lists cat"):
        run_dir.check_resume_classes(["cat", "dog"], ["cat"], "ck.pt")
