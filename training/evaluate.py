"""COCO evaluation: a detections file against ground truth, or a saved model on a dataset.

    python -m training.evaluate --annotations GT.json --detections DT.json
    python -m training.evaluate --checkpoint outputs/checkpoint.pt [dataset flags]
    torchrun --standalone --nproc_per_node=N -m training.evaluate --checkpoint FILE ...

Both print pycocotools' twelve standard numbers (AP and AR over IoU thresholds, sizes and
detection counts). With --checkpoint, dataset and model flags default to those the
checkpoint was trained with (a bare model_N.pt has no configuration: give the flags).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def coco_stats(gt: dict | COCO, detections) -> list[float]:
    """The twelve COCO bbox numbers; `detections` is a list of result dicts or a file path."""
    if isinstance(detections, list) and not detections:
        return [0.0] * 12  # pycocotools cannot load an empty result list
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        if isinstance(gt, dict):
            coco_gt = COCO()
            coco_gt.dataset = gt
            coco_gt.createIndex()
        else:
            coco_gt = gt
        ev = COCOeval(coco_gt, coco_gt.loadRes(detections), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(x) for x in ev.stats]


def get_args_parser() -> argparse.ArgumentParser:
    from .config import add_data_args, add_device_args, add_model_args

    parser = argparse.ArgumentParser(
        prog="python -m training.evaluate",
        description="COCO mAP of a detections file, or of a saved model on a dataset.",
    )
    parser.add_argument("--annotations", metavar="GT.json", help="COCO ground truth")
    parser.add_argument("--detections", metavar="DT.json", help="COCO results file")
    parser.add_argument("--checkpoint", metavar="FILE", help="checkpoint.pt or model_N.pt")
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML file of flag: value")
    parser.add_argument("--batch-size", type=int, help="global batch size")
    add_data_args(parser)
    add_model_args(parser)
    add_device_args(parser)
    parser.set_defaults(dataset=None, seed=None, frozen_bn=None)
    return parser


def evaluate_checkpoint(args) -> list[float] | None:

    from . import distributed as du
    from .config import resolve_defaults
    from .data import build_dataset, check_data, val_loader
    from .engine import evaluate
    from .model import build_model, infer_architecture, read_saved

    info = du.init_distributed(args.device, args.dist_backend)
    try:
        state, config, _ = read_saved(args.checkpoint)
        backbone, num_classes = infer_architecture(state)
        for key in ("dataset", "seed", "image_size", "val_size", "backbone", "frozen_bn"):
            if getattr(args, key, None) is None:
                setattr(args, key, config.get(key))
        for key in ("val_ann", "val_images", "val_csv", "classes_csv"):
            if getattr(args, key) is None:
                setattr(args, key, config.get(key))
        args.dataset = args.dataset or "synthetic"
        args.seed = 0 if args.seed is None else args.seed
        args.backbone = args.backbone or backbone
        resolve_defaults(args, info.device.type, info.world_size)
        dataset = build_dataset(args, "val")
        check_data(dataset)
        if dataset.num_classes != num_classes:
            raise SystemExit(
                f"{args.checkpoint} predicts {num_classes} classes; the dataset has "
                f"{dataset.num_classes}"
            )
        model = build_model(args.backbone, num_classes, args.image_size, bool(args.frozen_bn))
        model.load_state_dict(state)
        model.to(info.device)
        loader = val_loader(dataset, args, info)
        stats = evaluate(model, loader, info.device, dataset)
        if info.is_main:
            _print_stats(stats)
        return stats
    finally:
        du.cleanup()


def _print_stats(stats: list[float]) -> None:
    labels = [
        "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]",
        "Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ]",
        "Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ]",
        "Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ]",
        "Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ]",
        "Average Precision  (AP) @[ IoU=0.50:0.95 | area= large | maxDets=100 ]",
        "Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ]",
        "Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets= 10 ]",
        "Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]",
        "Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ]",
        "Average Recall     (AR) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ]",
        "Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ]",
    ]
    for label, value in zip(labels, stats, strict=True):
        print(f" {label} = {value:0.3f}")


def main(argv=None) -> int:
    from .config import parse_args

    parser = get_args_parser()
    args = parse_args(parser, argv)
    if args.checkpoint:
        evaluate_checkpoint(args)
        return 0
    if not (args.annotations and args.detections):
        parser.error("give --annotations and --detections, or --checkpoint")
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(args.annotations)
    stats = coco_stats(gt, args.detections)
    _print_stats(stats)
    print("AP {:.3f}  AP50 {:.3f}  AP75 {:.3f}".format(*np.round(stats[:3], 3)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
