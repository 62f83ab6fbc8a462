"""Draw a saved model's detections on images.

    python -m training.predict --checkpoint outputs/model_best.pt IMAGE... --out DIR

Writes DIR/<image name>.png with boxes, class names and scores drawn (each class in its own
colour, a legend in the corner), and prints one line per detection. model_N.pt,
model_best.pt and checkpoint.pt carry the class names and image size, and the log says which
were used; for a bare state_dict from elsewhere they come from the flags (--image-size,
--classes-csv, else "class N").

Inputs with the same file name in different folders get distinct outputs (the folder joins
the name: `a/x.jpg` -> `a_x.png`). An image that cannot be read is skipped with one warning
line and the others go on; the exit status is then 2 (as for any user mistake, see
training/errors.py).
"""

from __future__ import annotations

import os
import sys
from collections import Counter

from .errors import Parser, UsageError, at_least, in_range, run_cli

# Distinct colours for classes (Tableau 10, then darker variants), by label.
PALETTE = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
]


def class_colour(label: int) -> tuple[int, int, int]:
    r, g, b = PALETTE[label % len(PALETTE)]
    k = 1.0 - 0.35 * ((label // len(PALETTE)) % 3)  # darker on each pass around the palette
    return (int(r * k), int(g * k), int(b * k))


def get_args_parser() -> Parser:
    parser = Parser(prog="python -m training.predict", description="Draw detections on images.")
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument(
        "--checkpoint", required=True, help="model_N.pt, model_best.pt or checkpoint.pt"
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the PNGs")
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML file of flag: value")
    parser.add_argument("--score-threshold", type=in_range(0.0, 1.0), default=0.5)
    parser.add_argument("--image-size", type=at_least(32), help="default: the model file's")
    parser.add_argument("--classes-csv", help="class names for a bare state_dict")
    parser.add_argument("--device", choices=["cpu", "cuda"])
    return parser


def output_names(paths: list[str]) -> dict[str, str]:
    """A distinct output stem per input: its file name, with as many parent folders as it takes
    to tell apart inputs that share a file name."""
    stems = {p: os.path.splitext(os.path.basename(p))[0] for p in paths}
    clash = Counter(stems.values())
    names = {}
    for p, stem in stems.items():
        if clash[stem] == 1:
            names[p] = stem
            continue
        rivals = [q for q in paths if stems[q] == stem]
        parts = {q: os.path.normpath(os.path.abspath(q)).split(os.sep) for q in rivals}
        depth = 2
        while len({"_".join(v[-depth:]) for v in parts.values()}) < len(rivals):
            depth += 1
        names[p] = os.path.splitext("_".join(parts[p][-depth:]))[0]
    return names


def load_model(path: str, image_size: int | None, device):
    """(model, class names, image size, the Saved read) from any of our model files."""
    from .config import DEVICE_DEFAULTS
    from .model import architecture, build_model, load_into, read_saved

    saved = read_saved(path)
    backbone, num_classes = architecture(saved, path)
    image_size = image_size or saved.image_size or DEVICE_DEFAULTS[device.type]["image_size"]
    model = build_model(backbone, num_classes, image_size, bool(saved.config.get("frozen_bn")))
    load_into(model, saved, path)
    return model.to(device).eval(), saved.class_names, image_size, saved, backbone


def draw(original, boxes, labels, scores, names):
    """The image with one colour per class and a legend of the classes drawn."""
    import numpy as np
    import torch
    from PIL import Image, ImageDraw
    from torchvision.utils import draw_bounding_boxes

    def name(i):
        return names[i] if names and i < len(names) else f"class {i}"

    image = torch.from_numpy(np.asarray(original).copy()).permute(2, 0, 1)
    texts = [f"{name(i)} {s:.2f}" for i, s in zip(labels, scores, strict=True)]
    colours = [class_colour(i) for i in labels]
    drawn = draw_bounding_boxes(image, boxes, texts, colors=colours or None, width=2)
    out = Image.fromarray(drawn.permute(1, 2, 0).numpy())
    present = sorted(set(labels))
    if present:
        canvas = ImageDraw.Draw(out, "RGBA")
        row = 12
        width = 14 + 7 * max(len(name(i)) for i in present)
        canvas.rectangle((0, 0, width, 4 + row * len(present)), fill=(255, 255, 255, 190))
        for k, i in enumerate(present):
            y = 3 + row * k
            canvas.rectangle((3, y + 1, 10, y + 8), fill=class_colour(i))
            canvas.text((13, y - 1), name(i), fill=(0, 0, 0))
    return out


def main(argv=None) -> int:
    import logging

    import torch
    from PIL import Image, UnidentifiedImageError

    from .config import parse_args
    from .data.base import resize_to_tensor
    from .data.csv_format import read_classes
    from .run_dir import check_output_dir

    args = parse_args(get_args_parser(), argv)
    logging.basicConfig(format="%(levelname)s %(message)s", level=logging.INFO)
    log = logging.getLogger("training")
    check_output_dir(args.out, "--out")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA GPU is visible (use --device cpu)")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model, names, image_size, saved, backbone = load_model(args.checkpoint, args.image_size, device)
    if args.classes_csv:
        names, _, issues = read_classes(args.classes_csv)
        if issues:
            raise UsageError(f"--classes-csv {issues[0]}")
    log.info(
        "model %s (%s): backbone %s, image size %d, classes %s",
        args.checkpoint,
        saved.describe(),
        backbone,
        image_size,
        ", ".join(names) if names else "unnamed (give --classes-csv)",
    )
    os.makedirs(args.out, exist_ok=True)
    inputs = list(dict.fromkeys(args.images))  # the same path twice is one input
    names_out = output_names(inputs)
    failed = 0
    for path in inputs:
        try:
            with Image.open(path) as im:
                original = im.convert("RGB")
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            print(f"warning: {path}: skipped, cannot read it as an image ({why})", file=sys.stderr)
            failed += 1
            continue
        x, (sx, sy) = resize_to_tensor(original, image_size)
        with torch.inference_mode():
            out = model([x.float().div(255).to(device)])[0]
        keep = out["scores"] >= args.score_threshold
        boxes = out["boxes"][keep].cpu() / torch.tensor([sx, sy, sx, sy])
        labels = out["labels"][keep].tolist()
        scores = out["scores"][keep].tolist()
        target = os.path.join(args.out, names_out[path] + ".png")
        draw(original, boxes, labels, scores, names).save(target)
        print(f"{path}: {len(labels)} detections -> {target}")
        for i, s, box in zip(labels, scores, boxes.tolist(), strict=True):
            label = names[i] if names and i < len(names) else f"class {i}"
            print(f"  {label} {s:.2f} [{', '.join(f'{v:.1f}' for v in box)}]")
    if failed:
        raise UsageError(f"{failed} of {len(inputs)} images could not be read (warnings above)")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
