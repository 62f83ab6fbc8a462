"""The evaluation CLI on the pycocotools demo pair (100 COCO val2014 images, fake detections)."""

from __future__ import annotations

import json
import sys

import pytest

from training.coco_scoring import coco_stats

from .conftest import run


def test_evaluate_cli_prints_twelve_numbers_and_ap_0505(test_data):
    root = test_data / "coco-val2014-100"
    r = run(
        [
            sys.executable,
            "-m",
            "training.evaluate",
            "--annotations",
            str(root / "instances_val2014_100.json"),
            "--detections",
            str(root / "instances_val2014_fakebbox100_results.json"),
        ],
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith(" Average")]
    assert len(lines) == 12
    assert lines[0].endswith("= 0.505")
    assert "AP 0.505" in r.stdout


def test_coco_stats_perfect_and_empty_detections(test_data):
    gt = json.loads((test_data / "coco-mini" / "gt_dataset.json").read_text())
    perfect = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1}
        for a in gt["annotations"]
    ]
    assert coco_stats(gt, perfect)[1] == pytest.approx(1.0)
    assert coco_stats(gt, []) == [0.0] * 12


def test_training_loop_and_evaluation_cli_do_not_import_each_other():
    """COCO scoring sits below both: importing the loop does not load the CLI module."""
    import subprocess

    code = "import sys, training.engine; print('training.evaluate' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
