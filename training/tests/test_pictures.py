"""Pictures of a run: curves.png from metrics.jsonl, validation images with true and predicted
boxes, the precision-recall curve (all drawn with Pillow). A real run writes them: test_ddp.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from training import pictures
from training.coco_scoring import coco_stats
from training.data.synthetic import SyntheticDataset
from training.predict import class_colour


def test_curves_png_has_a_panel_per_quantity_and_draws_each_series(tmp_path):
    rows = [
        {
            "epoch": e,
            "loss": 2.0 - 0.5 * e,
            "lr": 1e-3 / (e + 1),
            "map": None if e == 0 else 0.1 * e,
        }
        for e in range(3)
    ]
    for r in rows:
        r["map50"] = None if r["map"] is None else r["map"] * 2
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = pictures.write_curves(str(tmp_path))
    im = np.asarray(Image.open(path).convert("RGB"))
    assert im.shape == (pictures.PANEL_H, 3 * pictures.PANEL_W, 3)
    for k, key in enumerate(("loss", "lr", "map")):
        panel = im[:, k * pictures.PANEL_W : (k + 1) * pictures.PANEL_W]
        assert (panel == pictures.SERIES[key]).all(axis=-1).sum() > 50, key
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png", "metrics.jsonl"]


def test_examples_show_true_boxes_white_and_predictions_in_their_class_colour():
    ds = SyntheticDataset(2, 96, "val")
    rec = ds.records[0]
    x1, y1, x2, y2 = rec.boxes[0].tolist()
    label = int(rec.labels[0])
    detections = [
        {
            "image_id": rec.image_id,
            "category_id": ds.category_ids[label],
            "bbox": [x1 + 3, y1 + 3, x2 - x1, y2 - y1],
            "score": 0.9,
        },
        {"image_id": rec.image_id, "category_id": 1, "bbox": [0, 0, 9, 9], "score": 0.1},
    ]
    grid = np.asarray(pictures.example_grid(ds, detections, count=2))
    assert grid.shape[0] == 196 and grid.shape[1] == 2 * 192 + 8
    first = grid[:, :192]
    assert (first == class_colour(label)).all(axis=-1).sum() > 40  # the prediction's outline
    assert (first == (255, 255, 255)).all(axis=-1).sum() > 40  # the true boxes


def test_pr_curve_of_perfect_detections_is_precision_1_at_every_recall():
    ds = SyntheticDataset(6, 64, "val")
    gt = ds.coco_gt()
    perfect = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1}
        for a in gt["annotations"]
    ]
    stats, ev = coco_stats(gt, perfect, keep_eval=True)
    assert stats[1] == pytest.approx(1.0)
    recall, precision = pictures.pr_curve(ev)
    assert len(recall) == 101 and recall[0] == 0 and recall[-1] == 1
    assert precision == pytest.approx(np.ones(101))
    assert pictures.pr_curve(None) is None
