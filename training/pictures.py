"""Pictures of a run, so that a person can look at it without starting TensorBoard.

- `curves.png` in the output folder: loss, learning rate and mAP per epoch (from
  metrics.jsonl), rewritten after every epoch.
- `val_examples.png` in the output folder and `val/examples` in TensorBoard: a few validation
  images with the true boxes (white) and the predicted ones (one colour per class, with the
  score), after every evaluation.
- `val/pr_curve` in TensorBoard: precision against recall at IoU 0.5, averaged over classes
  (pycocotools' interpolated table).

Drawn with Pillow (matplotlib is not a dependency). Rank 0 only; a picture that cannot be made
is a warning, never a reason to stop training.
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np
from PIL import Image, ImageDraw

from .predict import class_colour

log = logging.getLogger("training")

PANEL_W, PANEL_H, MARGIN = 300, 210, 34
WHITE, GREY, BLACK = (255, 255, 255), (200, 200, 200), (30, 30, 30)
SERIES = {
    "loss": (31, 119, 180),
    "lr": (255, 127, 14),
    "map": (44, 160, 44),
    "map50": (214, 39, 40),
}


def _save_atomic(image: Image.Image, path: str) -> None:
    tmp = f"{path}.tmp.{os.getpid()}.png"
    try:
        image.save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _panel(title: str, series: dict[str, list[tuple[float, float]]], fmt: str) -> Image.Image:
    """One line chart: x = epoch, a line per series, the y range written at the axis."""
    im = Image.new("RGB", (PANEL_W, PANEL_H), WHITE)
    d = ImageDraw.Draw(im)
    d.text((MARGIN, 6), title, fill=BLACK)
    points = [p for pts in series.values() for p in pts]
    x0, y0, x1, y1 = MARGIN, 22, PANEL_W - 10, PANEL_H - 24
    d.rectangle((x0, y0, x1, y1), outline=GREY)
    if not points:
        d.text((x0 + 8, y0 + 8), "no data yet", fill=BLACK)
        return im
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    xmin, xmax = min(xs), max(xs)
    ymin, ymax = min(ys), max(ys)
    if ymax == ymin:
        ymin, ymax = ymin - 0.5 * (abs(ymin) or 1), ymax + 0.5 * (abs(ymax) or 1)
    d.text((2, y0), format(ymax, fmt), fill=BLACK)
    d.text((2, y1 - 10), format(ymin, fmt), fill=BLACK)
    d.text((x0, y1 + 4), f"epoch {int(xmin)}", fill=BLACK)
    d.text((x1 - 52, y1 + 4), f"epoch {int(xmax)}", fill=BLACK)

    def at(x, y):
        fx = 0.5 if xmax == xmin else (x - xmin) / (xmax - xmin)
        return x0 + 4 + fx * (x1 - x0 - 8), y1 - 4 - (y - ymin) / (ymax - ymin) * (y1 - y0 - 8)

    for k, (name, pts) in enumerate(series.items()):
        colour = SERIES.get(name, BLACK)
        xy = [at(x, y) for x, y in pts]
        if len(xy) > 1:
            d.line(xy, fill=colour, width=2)
        for px, py in xy:
            d.ellipse((px - 2, py - 2, px + 2, py + 2), fill=colour)
        d.text((x1 - 50 * (len(series) - k), 6), name, fill=colour)  # in the header, right
    return im


def write_curves(output_dir: str) -> str:
    """Draw curves.png from metrics.jsonl (loss, learning rate, mAP per epoch)."""
    rows = []
    with open(os.path.join(output_dir, "metrics.jsonl")) as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))

    def pts(key):
        return [(r["epoch"], r[key]) for r in rows if r.get(key) is not None]

    panels = [
        _panel("training loss", {"loss": pts("loss")}, ".3f"),
        _panel("learning rate (end of epoch)", {"lr": pts("lr")}, ".1e"),
        _panel("validation mAP", {"map": pts("map"), "map50": pts("map50")}, ".3f"),
    ]
    out = Image.new("RGB", (PANEL_W * len(panels), PANEL_H), WHITE)
    for k, panel in enumerate(panels):
        out.paste(panel, (k * PANEL_W, 0))
    path = os.path.join(output_dir, "curves.png")
    _save_atomic(out, path)
    return path


def draw_boxes(image: Image.Image, truth, predicted, names, min_score: float = 0.3):
    """Truth boxes in white (x1y1x2y2), predictions [(box xywh, label, score)] per class."""
    im = image.convert("RGB")
    d = ImageDraw.Draw(im)
    for box in truth:
        d.rectangle(tuple(float(v) for v in box), outline=WHITE, width=1)
    for (x, y, w, h), label, score in predicted:
        if score < min_score:
            continue
        colour = class_colour(label)
        d.rectangle((x, y, x + w, y + h), outline=colour, width=2)
        name = names[label] if label < len(names) else f"class {label}"
        d.text((x + 2, max(0, y - 11)), f"{name} {score:.2f}", fill=colour)
    return im


def example_grid(dataset, detections: list[dict], count: int = 4) -> Image.Image:
    """The first `count` validation images with true and predicted boxes, side by side."""
    label_of = {c: i for i, c in enumerate(dataset.category_ids)}
    by_image: dict = {}
    for det in detections:
        by_image.setdefault(det["image_id"], []).append(
            (det["bbox"], label_of[det["category_id"]], det["score"])
        )
    tiles = []
    for index in range(min(count, len(dataset))):
        rec = dataset.records[index]
        image = dataset.load_image(index)
        k = 192 / max(image.size)  # boxes drawn after resizing, so their colours stay exact
        image = image.resize((round(image.width * k), round(image.height * k)))
        truth = [[v * k for v in box] for box in rec.boxes.tolist()]
        predicted = [
            ([v * k for v in box], label, score)
            for box, label, score in by_image.get(rec.image_id, [])
        ]
        tiles.append(draw_boxes(image, truth, predicted, dataset.class_names))
    grid = Image.new("RGB", (sum(t.width for t in tiles) + 4 * len(tiles), 196), WHITE)
    x = 0
    for t in tiles:
        grid.paste(t, (x, 2))
        x += t.width + 4
    return grid


def pr_curve(coco_eval) -> tuple[np.ndarray, np.ndarray] | None:
    """(recall, precision) at IoU 0.5, all areas, 100 detections, averaged over classes."""
    if coco_eval is None or not coco_eval.eval:
        return None
    precision = coco_eval.eval["precision"][0, :, :, 0, -1]  # [recall points, classes]
    seen = (precision > -1).any(axis=0)
    if not seen.any():
        return None
    mean = np.where(precision[:, seen] > -1, precision[:, seen], 0.0).mean(axis=1)
    return np.asarray(coco_eval.params.recThrs), mean


def log_evaluation(writer, output_dir: str, dataset, out: dict, epoch: int) -> None:
    """TensorBoard images and PR curve, and val_examples.png, for one evaluation."""
    try:
        grid = example_grid(dataset, out.get("detections", []))
        _save_atomic(grid, os.path.join(output_dir, "val_examples.png"))
        if writer is not None:
            writer.add_image("val/examples", np.asarray(grid), epoch, dataformats="HWC")
            curve = pr_curve(out.get("coco_eval"))
            if curve is not None:
                recall, precision = curve
                n = len(recall)
                zeros = np.zeros(n)
                writer.add_pr_curve_raw(
                    "val/pr_curve_iou50", zeros, zeros, zeros, zeros, precision, recall,
                    epoch, num_thresholds=n,
                )  # fmt: skip
    except Exception as exc:  # pictures are a convenience: never stop a run for one
        log.warning("could not draw the evaluation pictures: %s: %s", type(exc).__name__, exc)
