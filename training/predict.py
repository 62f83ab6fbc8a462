"""Draw a saved model's detections on images.

    python -m training.predict --checkpoint outputs/model_2.pt IMAGE... --out DIR

Writes DIR/<image name>.png with boxes, class names and scores drawn, and prints one line
per detection. A checkpoint.pt carries its class names and image size; for a bare
model_N.pt they come from the flags (--image-size; names from --classes-csv, else "class N").
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch
from PIL import Image
from torchvision.utils import draw_bounding_boxes

from .config import DEVICE_DEFAULTS, parse_args
from .data.base import resize_to_tensor
from .data.csv_format import read_classes
from .model import build_model, infer_architecture, read_saved


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.predict", description="Draw detections on images."
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("--checkpoint", required=True, help="checkpoint.pt or model_N.pt")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the PNGs")
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML file of flag: value")
    parser.add_argument("--score-threshold", type=float, default=0.5)
    parser.add_argument("--image-size", type=int, help="default: the checkpoint's")
    parser.add_argument("--classes-csv", help="class names for a bare model_N.pt")
    parser.add_argument("--device", choices=["cpu", "cuda"])
    return parser


def load_model(path: str, image_size: int | None, device: torch.device):
    """(model, class names, image size) from a checkpoint.pt or a bare model_N.pt."""
    state, config, names = read_saved(path)
    backbone, num_classes = infer_architecture(state)
    image_size = (
        image_size or config.get("image_size") or DEVICE_DEFAULTS[device.type]["image_size"]
    )
    model = build_model(backbone, num_classes, image_size, bool(config.get("frozen_bn")))
    model.load_state_dict(state)
    return model.to(device).eval(), names, image_size


def main(argv=None) -> int:
    args = parse_args(get_args_parser(), argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model, names, image_size = load_model(args.checkpoint, args.image_size, device)
    if args.classes_csv:
        names, _, issues = read_classes(args.classes_csv)
        if issues:
            sys.exit("\n".join(map(str, issues)))
    os.makedirs(args.out, exist_ok=True)
    for path in args.images:
        with Image.open(path) as im:
            original = im.convert("RGB")
        x, (sx, sy) = resize_to_tensor(original, image_size)
        with torch.inference_mode():
            out = model([x.float().div(255).to(device)])[0]
        keep = out["scores"] >= args.score_threshold
        boxes = out["boxes"][keep].cpu() / torch.tensor([sx, sy, sx, sy])
        labels = [
            f"{names[i] if names and i < len(names) else f'class {i}'} {s:.2f}"
            for i, s in zip(out["labels"][keep].tolist(), out["scores"][keep].tolist(), strict=True)
        ]
        image = torch.from_numpy(np.asarray(original).copy()).permute(2, 0, 1)
        drawn = draw_bounding_boxes(image, boxes, labels, colors="red", width=2)
        target = os.path.join(args.out, os.path.splitext(os.path.basename(path))[0] + ".png")
        Image.fromarray(drawn.permute(1, 2, 0).numpy()).save(target)
        print(f"{path}: {len(labels)} detections -> {target}")
        for label, box in zip(labels, boxes.tolist(), strict=True):
            print(f"  {label} [{', '.join(f'{v:.1f}' for v in box)}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
