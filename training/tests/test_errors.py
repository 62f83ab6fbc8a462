"""The error contract, held by a table: every entry point on bad inputs, in real processes.

Each case must exit 2, print exactly one `error:` line that names the thing at fault, print
no traceback, and change no file that existed before (every file of the workspace is hashed
before and after all the cases). The cases run a few at a time; most fail before torch is
imported, the others within a few seconds.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from .conftest import TEST_DATA, clean_env, run

pytestmark = pytest.mark.slow

TINY = [
    "--device=cpu",
    "--image-size=64",
    "--train-size=8",
    "--val-size=4",
    "--batch-size=8",
    "--workers=0",
    "--progress=log",
]

TRAIN, PREDICT, EVALUATE = "training", "training.predict", "training.evaluate"

# (id, entry point, arguments with {W} for the workspace, a fragment the error line must hold)
CASES = [
    ("batch-size-0", TRAIN, ["--batch-size", "0"], "--batch-size: must be at least 1"),
    ("lr-negative", TRAIN, ["--lr", "-1"], "--lr: must be a finite number above 0"),
    ("image-size-0", TRAIN, ["--image-size", "0"], "--image-size: must be at least 32"),
    ("workers-negative", TRAIN, ["--workers", "-1"], "--workers: must be at least 0"),
    ("log-every-0", TRAIN, ["--log-every", "0"], "--log-every: must be at least 1"),
    ("epochs-0", TRAIN, ["--epochs", "0"], "--epochs: must be at least 1"),
    ("epochs-word", TRAIN, ["--epochs", "three"], "'three' is not an integer"),
    ("unknown-flag", TRAIN, ["--batchsize", "8"], "unknown argument --batchsize"),
    ("config-missing", TRAIN, ["--config", "{W}/nope.yaml"], "nope.yaml"),
    ("config-typo", TRAIN, ["--config", "{W}/typo.yaml"], "unknown key 'epoch'"),
    ("config-range", TRAIN, ["--config", "{W}/range.yaml"], "lr: must be a finite number"),
    ("output-dir-file", TRAIN, [*TINY, "--output-dir", "{W}/afile"], "is a file, not a folder"),
    ("output-dir-uncreatable", TRAIN, [*TINY, "--output-dir", "/proc/1/x/out"], "cannot be"),
    ("resume-none-into-run", TRAIN, [*TINY, "--output-dir", "{W}/run", "--resume", "none"],
     "already holds a run"),
    ("resume-other-optimizer", TRAIN, [*TINY, "--output-dir", "{W}/run", "--optimizer", "sgd"],
     "--optimizer adamw -> sgd"),
    ("resume-other-image-size", TRAIN,
     [*TINY, "--output-dir", "{W}/run", "--image-size", "96"], "--image-size 64 -> 96"),
    ("resume-other-backbone", TRAIN,
     [*TINY, "--output-dir", "{W}/run", "--backbone", "resnet18"], "--backbone resnet10 ->"),
    ("resume-missing-file", TRAIN, [*TINY, "--output-dir", "{W}/new", "--resume", "{W}/no.pt"],
     "no.pt: no such file"),
    ("resume-garbage", TRAIN, [*TINY, "--output-dir", "{W}/new", "--resume", "{W}/junk.pt"],
     "junk.pt is corrupt or truncated"),
    ("resume-a-model-file", TRAIN,
     [*TINY, "--output-dir", "{W}/new", "--resume", "{W}/run/model_0.pt"],
     "is not a training checkpoint"),
    ("unreadable-checkpoints", TRAIN, [*TINY, "--output-dir", "{W}/broken"],
     "no readable checkpoint"),
    ("frozen-bn-without-weights", TRAIN, [*TINY, "--output-dir", "{W}/new", "--frozen-bn"],
     "--frozen-bn needs --weights"),
    ("weights-missing", TRAIN, [*TINY, "--output-dir", "{W}/new", "--weights", "{W}/no.pt"],
     "--weights {W}/no.pt: no such file"),
    ("coco-without-files", TRAIN, [*TINY, "--output-dir", "{W}/new", "--dataset", "coco"],
     "--dataset coco needs --train-ann"),
    ("csv-bad-rows", TRAIN,
     [*TINY, "--output-dir", "{W}/new", "--dataset", "csv", "--train-csv", "{W}/train.csv",
      "--val-csv", "{W}/train.csv", "--classes-csv", "{W}/classes.csv"], "bad data"),
    ("train-smaller-than-a-batch", TRAIN, [*TINY, "--output-dir", "{W}/new", "--train-size", "2"],
     "fewer than one batch"),
    ("predict-missing-checkpoint", PREDICT,
     ["--checkpoint", "{W}/no.pt", "--out", "{W}/pred", "{W}/shape.png"], "no.pt: no such file"),
    ("predict-garbage-checkpoint", PREDICT,
     ["--checkpoint", "{W}/junk.pt", "--out", "{W}/pred", "{W}/shape.png"],
     "junk.pt is not a model file"),
    ("predict-folder-as-checkpoint", PREDICT,
     ["--checkpoint", "{W}/run", "--out", "{W}/pred", "{W}/shape.png"], "is a folder"),
    ("predict-out-is-a-file", PREDICT,
     ["--checkpoint", "{W}/run/model_0.pt", "--out", "{W}/afile", "{W}/shape.png"],
     "--out {W}/afile is a file"),
    ("predict-threshold", PREDICT,
     ["--checkpoint", "{W}/run/model_0.pt", "--out", "{W}/pred", "--score-threshold", "2",
      "{W}/shape.png"], "--score-threshold: must lie in [0.0, 1.0]"),
    ("predict-bad-image", PREDICT,
     ["--checkpoint", "{W}/run/model_0.pt", "--out", "{W}/pred", "{W}/junk.pt"],
     "1 of 1 images could not be read"),
    ("predict-bad-classes", PREDICT,
     ["--checkpoint", "{W}/run/model_0.pt", "--out", "{W}/pred", "--classes-csv",
      "{W}/nope.csv", "{W}/shape.png"], "nope.csv: missing file"),
    ("predict-no-image", PREDICT, ["--checkpoint", "{W}/run/model_0.pt", "--out", "{W}/pred"],
     "IMAGE"),
    ("evaluate-nothing", EVALUATE, [], "give --annotations and --detections, or --checkpoint"),
    ("evaluate-missing-gt", EVALUATE,
     ["--annotations", "{W}/no.json", "--detections", "{D}/coco-mini/dt_dataset.json"],
     "--annotations {W}/no.json: no such file"),
    ("evaluate-gt-not-json", EVALUATE,
     ["--annotations", "{D}/coco-mini/img_1.jpg", "--detections", "{D}/coco-mini/dt_dataset.json"],
     "img_1.jpg is not a text (JSON) file"),
    ("evaluate-gt-truncated", EVALUATE,
     ["--annotations", "{W}/half.json", "--detections", "{D}/coco-mini/dt_dataset.json"],
     "half.json:1: not valid JSON"),
    ("evaluate-swapped", EVALUATE,
     ["--annotations", "{D}/coco-mini/dt_dataset.json", "--detections",
      "{D}/coco-mini/gt_dataset.json"], "is not COCO ground truth"),
    ("evaluate-other-images", EVALUATE,
     ["--annotations", "{D}/coco-mini/gt_dataset.json", "--detections",
      "{D}/coco-val2014-100/instances_val2014_fakebbox100_results.json"],
     "names image ids that"),
    ("evaluate-garbage-checkpoint", EVALUATE, ["--checkpoint", "{W}/junk.pt", "--device=cpu"],
     "junk.pt is not a model file"),
    ("evaluate-other-classes", EVALUATE,
     ["--checkpoint", "{W}/run/model_0.pt", "--device=cpu", "--workers=0", "--dataset", "csv",
      "--val-csv", "{W}/good.csv", "--classes-csv", "{W}/classes.csv"],
     "predicts 3 classes; the csv dataset has 1"),
    ("evaluate-save-into-missing-folder", EVALUATE,
     ["--checkpoint", "{W}/run/model_0.pt", "--save-detections", "{W}/no/dir/dt.json"],
     "does not exist"),
    ("evaluate-save-without-checkpoint", EVALUATE,
     ["--annotations", "{D}/coco-mini/gt_dataset.json", "--save-detections", "{W}/dt.json"],
     "--save-detections needs --checkpoint"),
]  # fmt: skip

if torch.cuda.is_available():  # a mistake only where there is no GPU
    CASES = [c for c in CASES if c[0] != "device-cuda"]
else:
    CASES.append(("device-cuda", TRAIN, [*TINY, "--device", "cuda"], "no CUDA GPU is visible"))


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A finished tiny run and the bad inputs the cases point at."""
    w = tmp_path_factory.mktemp("errors")
    r = run(
        [sys.executable, "-m", "training", *TINY, "--epochs=1", f"--output-dir={w / 'run'}"],
        timeout=180,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    (w / "afile").write_text("not a folder\n")
    (w / "junk.pt").write_bytes(b"this is not a checkpoint")
    (w / "typo.yaml").write_text("epoch: 3\n")
    (w / "range.yaml").write_text("lr: -1\n")
    (w / "half.json").write_text('{"images": [')
    (w / "broken").mkdir()
    (w / "broken" / "checkpoint.pt").write_bytes(b"\0" * 64)
    (w / "classes.csv").write_text("cat,0\n")
    (w / "train.csv").write_text("gone.png,0,0,5,5,cat\nx.png,1,2\n")
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 30, 30)).save(w / "shape.png")
    (w / "good.csv").write_text("shape.png,1,1,20,20,cat\n")
    shutil.copy(TEST_DATA / "coco-mini" / "gt_dataset.json", w / "gt.json")
    return w


@pytest.fixture(scope="module")
def results(workspace):
    before = _hashes(workspace)

    def one(case):
        _, entry, args, _ = case
        argv = [a.format(W=workspace, D=TEST_DATA) for a in args]
        return run([sys.executable, "-m", entry, *argv], timeout=180, env=clean_env())

    with ThreadPoolExecutor(max_workers=3) as pool:
        done = dict(zip([c[0] for c in CASES], pool.map(one, CASES), strict=True))
    return done, before, _hashes(workspace)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_a_mistake_exits_2_with_one_error_line_and_no_traceback(case, results, workspace):
    name, _, _, fragment = case
    r = results[0][name]
    output = r.stdout + r.stderr
    assert r.returncode == 2, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, r.stderr[-3000:]
    assert fragment.format(W=workspace, D=TEST_DATA) in errors[0], errors[0]


def test_no_mistake_changed_a_file_that_existed_before(results):
    _, before, after = results
    changed = [p for p, digest in before.items() if after.get(p) != digest]
    assert changed == []
    assert [p for p in after if p not in before] == [], "a refused run wrote files"


def test_debug_shows_the_traceback_too(workspace):
    argv = ["--checkpoint", str(workspace / "junk.pt"), "--out", str(workspace / "p2")]
    r = run(
        [sys.executable, "-m", PREDICT, *argv, str(workspace / "shape.png")],
        env=clean_env(TRAINING_DEBUG="1"),
    )
    assert r.returncode == 2 and "Traceback" in r.stderr
    assert r.stderr.rstrip().splitlines()[-1].startswith("error: --checkpoint")


def test_an_error_reaches_stderr_in_one_write_with_its_newline(monkeypatch):
    """Every rank writes to the pipe torchrun shares: a message and its newline in one write
    (atomic on a pipe up to 4 KiB), or another rank's message may start on this one's line
    (seen in CI: "... got 3[rank 0/2] error: bad data")."""
    from training import errors

    writes = []

    class Stderr:
        def write(self, text):
            writes.append(text)

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stderr", Stderr())
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    errors.print_error("bad data (2 problem(s)):\n  train.csv:2: expected 6 fields")
    assert writes == [
        "[rank 1/2] error: bad data (2 problem(s)):\n  train.csv:2: expected 6 fields\n"
    ]
