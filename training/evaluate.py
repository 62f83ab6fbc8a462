"""COCO evaluation: a detections file against ground truth, or a saved model on a dataset.

    python -m training.evaluate --annotations GT.json --detections DT.json
    python -m training.evaluate --checkpoint outputs/model_best.pt [dataset flags]
    python -m training.evaluate --checkpoint outputs/model_2.pt --save-detections dt.json
    torchrun --standalone --nproc_per_node=N -m training.evaluate --checkpoint FILE ...

Both print pycocotools' twelve standard numbers (AP and AR over IoU thresholds, sizes and
detection counts). With --checkpoint, dataset and model flags default to those the model
was trained with (model_N.pt, model_best.pt and checkpoint.pt all carry them; a bare
state_dict from elsewhere needs the flags); the log says which were used.
`--save-detections FILE` writes the scored detections in the COCO results format, the input
of the first form. Exit status as `python -m training` (training/errors.py): 2 for a user
mistake, with one `error:` line.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys

from .coco_scoring import coco_stats
from .errors import Parser, UsageError, at_least, run_cli

__all__ = ["coco_stats", "get_args_parser", "main", "score_files"]


def get_args_parser() -> Parser:
    from .config import add_data_args, add_device_args, add_model_args

    parser = Parser(
        prog="python -m training.evaluate",
        description="COCO mAP of a detections file, or of a saved model on a dataset.",
    )
    parser.add_argument("--annotations", metavar="GT.json", help="COCO ground truth")
    parser.add_argument("--detections", metavar="DT.json", help="COCO results file")
    parser.add_argument(
        "--checkpoint", metavar="FILE", help="model_N.pt, model_best.pt or checkpoint.pt"
    )
    parser.add_argument(
        "--save-detections",
        metavar="FILE.json",
        help="with --checkpoint: write the detections scored, in the COCO results format",
    )
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML file of flag: value")
    parser.add_argument("--batch-size", type=at_least(1), help="global batch size")
    parser.add_argument(
        "--progress", default="auto", choices=["auto", "bar", "log"], help="progress display"
    )
    add_data_args(parser)
    add_model_args(parser)
    add_device_args(parser)
    parser.set_defaults(dataset=None, seed=None, frozen_bn=None)
    return parser


def evaluate_checkpoint(args) -> list[float] | None:
    import logging

    from . import distributed as du
    from .config import resolve_defaults
    from .data import build_dataset, check_data, val_loader
    from .engine import evaluate
    from .model import architecture, build_model, load_into, read_saved
    from .run_dir import check_output_file

    log = logging.getLogger("training")
    if args.save_detections:
        check_output_file(args.save_detections, "--save-detections", (args.checkpoint,))
    info = du.init_distributed(args.device, args.dist_backend)
    try:
        saved = read_saved(args.checkpoint)
        backbone, num_classes = architecture(saved, args.checkpoint)
        config = saved.config
        from_file = []
        for key in ("dataset", "seed", "val_size", "frozen_bn", "val_ann", "val_images"):
            if getattr(args, key, None) is None and config.get(key) is not None:
                setattr(args, key, config[key])
                from_file.append(key)
        for key in ("val_csv", "classes_csv"):
            if getattr(args, key) is None and config.get(key) is not None:
                setattr(args, key, config[key])
                from_file.append(key)
        if args.image_size is None and saved.image_size:
            args.image_size = saved.image_size
            from_file.append("image_size")
        args.dataset = args.dataset or "synthetic"
        args.seed = 0 if args.seed is None else args.seed
        args.backbone = args.backbone or backbone
        resolve_defaults(args, info.device.type, info.world_size)
        log.info(
            "model %s (%s): backbone %s, image size %d, %d classes%s; from the file: %s",
            args.checkpoint,
            saved.describe(),
            args.backbone,
            args.image_size,
            num_classes,
            f" ({', '.join(saved.class_names)})" if saved.class_names else "",
            ", ".join(f"--{k.replace('_', '-')}" for k in from_file) or "nothing (flags given)",
        )
        dataset = build_dataset(args, "val")
        check_data(dataset)
        if dataset.num_classes != num_classes:
            raise UsageError(
                f"--checkpoint {args.checkpoint} predicts {num_classes} classes; the "
                f"{args.dataset} dataset has {dataset.num_classes}: give the data it was "
                "trained on"
            )
        model = build_model(args.backbone, num_classes, args.image_size, bool(args.frozen_bn))
        load_into(model, saved, args.checkpoint)
        model.to(info.device)
        loader = val_loader(dataset, args, info)
        out: dict = {}
        stats = evaluate(model, loader, info.device, dataset, progress=args.progress, out=out)
        if info.is_main:
            _print_stats(stats)
            if args.save_detections:
                _write_json(out["detections"], args.save_detections)
                log.info("wrote %d detections to %s", len(out["detections"]), args.save_detections)
        return stats
    finally:
        du.cleanup()


def _write_json(obj, path: str) -> None:
    import os

    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            json.dump(obj, f)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise UsageError(f"--save-detections {path}: cannot write ({exc.strerror})") from None


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


def _read_json(path: str, flag: str):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise UsageError(f"{flag} {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{flag} {path} is a folder, not a JSON file") from None
    except UnicodeDecodeError:
        raise UsageError(f"{flag} {path} is not a text (JSON) file") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{flag} {path}:{exc.lineno}: not valid JSON ({exc.msg})") from None


def score_files(annotations: str, detections: str) -> list[float]:
    """The twelve numbers of a COCO results file against COCO ground truth."""
    from pycocotools.coco import COCO

    gt, dt = _read_json(annotations, "--annotations"), _read_json(detections, "--detections")
    if not isinstance(gt, dict) or not {"images", "annotations", "categories"} <= gt.keys():
        raise UsageError(
            f"--annotations {annotations} is not COCO ground truth (it needs images, "
            "annotations and categories)"
        )
    if not isinstance(dt, list) or not all(isinstance(d, dict) for d in dt):
        raise UsageError(
            f"--detections {detections} is not a COCO results file (a list of "
            '{"image_id", "category_id", "bbox", "score"} objects)'
        )
    need = {"image_id", "category_id", "bbox", "score"}
    for i, d in enumerate(dt):
        if not need <= d.keys():
            missing = ", ".join(sorted(need - d.keys()))
            raise UsageError(f"--detections {detections}: result {i} lacks {missing}")
    images = {img.get("id") for img in gt["images"] if isinstance(img, dict)}
    if unknown := sorted({d["image_id"] for d in dt} - images, key=str):
        raise UsageError(
            f"--detections {detections} names image ids that {annotations} lacks "
            f"({', '.join(map(str, unknown[:5]))}{', ...' if len(unknown) > 5 else ''}): "
            "score detections against the ground truth they were made for"
        )
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt = COCO()
            coco_gt.dataset = gt
            coco_gt.createIndex()
        return coco_stats(coco_gt, dt)
    except (KeyError, TypeError, ValueError, IndexError, AssertionError) as exc:
        raise UsageError(
            f"--annotations {annotations} / --detections {detections}: pycocotools cannot "
            f"use them ({type(exc).__name__}: {exc})"
        ) from None


def main(argv=None) -> int:
    from .config import parse_args

    parser = get_args_parser()
    args = parse_args(parser, argv)
    if args.checkpoint:
        evaluate_checkpoint(args)
        return 0
    if args.save_detections:
        parser.error("--save-detections needs --checkpoint (it writes the model's detections)")
    if not (args.annotations and args.detections):
        parser.error("give --annotations and --detections, or --checkpoint")
    stats = score_files(args.annotations, args.detections)
    _print_stats(stats)
    print("AP {:.3f}  AP50 {:.3f}  AP75 {:.3f}".format(*(round(x, 3) for x in stats[:3])))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
