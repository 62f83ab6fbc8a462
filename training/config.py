"""Command-line flags, `--config FILE.yaml`, and the defaults that depend on the device.

A YAML config holds flag names as keys (`batch-size: 32` or `batch_size: 32`); flags given on
the command line win over it. Flags left unset take a default that suits the device: a small
job on CPUs (the demo that `make train` runs on 2 cores) and a larger one on GPUs.
"""

from __future__ import annotations

import argparse
import os

import yaml

from .errors import Parser, UsageError, at_least, positive

BACKBONES = ("resnet10", "resnet18", "resnet34", "resnet50")

# The global batch that --lr is tuned for: --lr-scale linear multiplies --lr by batch / this.
LR_REFERENCE_BATCH = 16

# Defaults for the flags whose default is None, per device type.
DEVICE_DEFAULTS = {
    "cpu": {
        "backbone": "resnet10",
        "image_size": 128,
        "batch_size": 16,
        "train_size": 1600,
        "val_size": 200,
        "epochs": 3,
        "workers": 1,
        "sync_every": 1,  # a read costs nothing where the host is the device
    },
    "cuda": {
        "backbone": "resnet50",
        "image_size": 512,
        "batch_size": 16,  # per GPU: multiplied by the number of processes
        "train_size": 16000,
        "val_size": 500,
        "epochs": 12,
        "workers": 6,
    },
}


def add_data_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("data")
    g.add_argument(
        "--dataset", default="synthetic", choices=["synthetic", "coco", "csv"], help="data source"
    )
    g.add_argument(
        "--train-size", type=at_least(1), help="synthetic: training images (cpu 1600, cuda 16000)"
    )
    g.add_argument(
        "--val-size", type=at_least(1), help="synthetic: validation images (cpu 200, cuda 500)"
    )
    g.add_argument("--train-ann", help="coco: training annotation JSON")
    g.add_argument("--train-images", help="coco: folder of training images")
    g.add_argument("--val-ann", help="coco: validation annotation JSON")
    g.add_argument("--val-images", help="coco: folder of validation images")
    g.add_argument("--train-csv", help="csv: training annotations (path,x1,y1,x2,y2,class_name)")
    g.add_argument("--val-csv", help="csv: validation annotations")
    g.add_argument("--classes-csv", help="csv: classes file (class_name,id)")
    g.add_argument(
        "--image-size", type=at_least(32), help="longer image side in pixels (cpu 128, cuda 512)"
    )
    g.add_argument(
        "--workers", type=at_least(0), help="data loader workers per process (cpu 1, cuda 6)"
    )
    g.add_argument(
        "--seed", type=at_least(0), default=0, help="seed for data, initialisation, order"
    )


def add_model_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model")
    g.add_argument("--backbone", choices=BACKBONES, help="ResNet-FPN (cpu resnet10, cuda resnet50)")
    g.add_argument("--weights", metavar="PATH", help="start from this local weights file")
    g.add_argument(
        "--frozen-bn",
        action="store_true",
        help="FrozenBatchNorm2d in the backbone (as torchvision does with pretrained weights)",
    )


def add_device_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("device")
    g.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available")
    g.add_argument(
        "--dist-backend", choices=["gloo", "nccl"], help="default: nccl on cuda, gloo on cpu"
    )


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show a flag's default unless it is None (the device decides those; the help says how)."""

    def _get_help_string(self, action):
        if action.default is None or action.default == argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def get_args_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m training",
        description="Train RetinaNet with DistributedDataParallel (launch with torchrun).",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML file of flag: value")
    parser.add_argument("--output-dir", default="outputs", help="checkpoints, logs, metrics")
    parser.add_argument(
        "--shared-output-dir",
        action="store_true",
        help="OUTPUT_DIR is one folder on a shared file system, seen by every node: rank 0 "
        "alone writes checkpoint.pt (default: the first process of every node keeps one in "
        "its own OUTPUT_DIR, so that losing a node loses no checkpoint)",
    )
    parser.add_argument(
        "--resume",
        default="auto",
        metavar="auto|PATH|none",
        help="auto: continue from OUTPUT_DIR/checkpoint.pt when it exists; none: start "
        "afresh (refused where OUTPUT_DIR holds a run, unless --start-over)",
    )
    parser.add_argument(
        "--start-over",
        action="store_true",
        help="start afresh: move the run in OUTPUT_DIR to OUTPUT_DIR/previous/<time>/ first "
        "(nothing is deleted)",
    )
    add_data_args(parser)
    add_model_args(parser)
    add_device_args(parser)
    g = parser.add_argument_group("optimisation")
    g.add_argument("--epochs", type=at_least(1), help="epochs to train (cpu 3, cuda 12)")
    g.add_argument(
        "--batch-size", type=at_least(1), help="global batch size (cpu 16, cuda 16 per GPU)"
    )
    g.add_argument("--optimizer", default="adamw", choices=["adamw", "sgd"], help="optimizer")
    g.add_argument(
        "--lr",
        type=positive(),
        help=f"peak learning rate at a global batch of {LR_REFERENCE_BATCH} (adamw 2e-3, sgd 0.01)",
    )
    g.add_argument("--momentum", type=at_least(0.0, float), default=0.9, help="sgd momentum")
    g.add_argument("--weight-decay", type=at_least(0.0, float), default=1e-4, help="weight decay")
    g.add_argument(
        "--norm-weight-decay",
        type=at_least(0.0, float),
        help="weight decay of normalisation layers and biases (default: --weight-decay, as "
        "torchvision's references; 0 is the common choice)",
    )
    g.add_argument(
        "--lr-scale",
        default="linear",
        choices=["linear", "none"],
        help=f"linear: the rate used is --lr x global batch / {LR_REFERENCE_BATCH} (the linear "
        "scaling rule of torchvision's and detectron2's references); none: --lr as given",
    )
    g.add_argument(
        "--lr-schedule", default="cosine", choices=["cosine", "step"], help="after the warmup"
    )
    g.add_argument(
        "--warmup-steps",
        type=at_least(0),
        help="linear warmup steps (default 5%% of all, at most 1000)",
    )
    g.add_argument(
        "--lr-steps",
        type=at_least(0),
        nargs="+",
        help="step schedule: epochs where the rate drops (default 2/3 and 8/9 of --epochs)",
    )
    g.add_argument("--lr-gamma", type=positive(), default=0.1, help="step schedule: drop factor")
    g.add_argument(
        "--clip-grad", type=at_least(0.0, float), default=0.0, help="max gradient norm (0: off)"
    )
    g.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="mixed precision on GPUs: bf16 autocast where supported, else fp16 with a scaler",
    )
    g.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="channels-last memory format (faster convolutions on tensor cores)",
    )
    g.add_argument(
        "--sync-bn",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="convert trainable BatchNorm to SyncBatchNorm (GPUs only)",
    )
    g.add_argument(
        "--find-unused-parameters",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="DDP option; not needed: the loss reaches every parameter",
    )
    g.add_argument(
        "--loss",
        default="batched",
        choices=["batched", "torchvision"],
        help="batched: the whole batch's matching and loss at once with fp32 anchors, no host "
        "syncs (training/loss.py); torchvision: RetinaNet.compute_loss, image by image",
    )
    g.add_argument(
        "--input",
        choices=["canvas", "transform"],
        help="canvas (default with --loss batched): uint8 images from the workers, batches of "
        "one aspect-ratio bucket padded to a few fixed canvases, normalised on the device "
        "(training/canvas.py); transform: float images through torchvision's "
        "GeneralizedRCNNTransform (the seed's path; the only one for --loss torchvision)",
    )
    g.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="torch.compile the forward + loss (--input canvas: static shapes, one graph per "
        "canvas; minutes of compilation first, worth it on GPUs)",
    )
    g.add_argument(
        "--max-nonfinite",
        type=at_least(1),
        default=5,
        help="stop after this many consecutive steps with a non-finite loss or gradients",
    )
    g = parser.add_argument_group("evaluation and logging")
    g.add_argument(
        "--eval-every", type=at_least(0), default=1, help="COCO mAP every N epochs (0: last only)"
    )
    g.add_argument(
        "--progress",
        default="auto",
        choices=["auto", "bar", "log"],
        help="rank 0 progress: a tqdm bar, log lines, or auto (bar on a terminal)",
    )
    g.add_argument(
        "--log-every",
        type=at_least(1),
        default=20,
        help="steps between log lines and TensorBoard points",
    )
    g.add_argument(
        "--sync-every",
        type=at_least(1),
        help="steps between the host's reads of the steps' losses and flags (a stop request, "
        "non-finite steps), besides every log step; a stop request takes effect at the next "
        "read (cpu 1, cuda: --log-every)",
    )
    return parser


def _config_defaults(path: str, parser: argparse.ArgumentParser) -> dict:
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as exc:
        parser.error(f"--config {path}: {exc}")
    if not isinstance(data, dict):
        parser.error(f"--config {path}: expected a mapping of flag: value")
    actions = {a.dest: a for a in parser._actions}
    out = {}
    for key, value in data.items():
        dest = str(key).replace("-", "_")
        action = actions.get(dest)
        if action is None or dest in ("help", "config", "debug"):
            near = parser.nearest(f"--{str(key).replace('_', '-')}")
            hint = f" (did you mean {near[2:]}?)" if near else ""
            parser.error(f"--config {path}: unknown key {key!r}{hint}")
        flag = action.option_strings[0]
        if isinstance(action, argparse._StoreTrueAction | argparse.BooleanOptionalAction):
            if not isinstance(value, bool):
                parser.error(f"--config {path}: {key} must be true or false, got {value!r}")
        elif value is not None:
            values = value if isinstance(value, list) else [value]
            if action.nargs is None and isinstance(value, list):
                parser.error(f"--config {path}: {key} takes one value, got a list")
            try:
                values = [action.type(str(v)) if action.type else v for v in values]
            except argparse.ArgumentTypeError as exc:
                parser.error(f"--config {path}: {key}: {exc} ({flag})")
            except (TypeError, ValueError):
                parser.error(f"--config {path}: {key}: invalid value {value!r} for {flag}")
            if action.choices and any(v not in action.choices for v in values):
                parser.error(f"--config {path}: {key} must be one of {', '.join(action.choices)}")
            value = values if action.nargs else values[0]
        out[dest] = value
    return out


def parse_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse flags over the values of `--config FILE.yaml` (command-line flags win)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    if known.config:
        parser.set_defaults(**_config_defaults(known.config, parser))
    args = parser.parse_args(argv)
    if getattr(args, "frozen_bn", False) and not getattr(args, "weights", None):
        parser.error(
            "--frozen-bn needs --weights: FrozenBatchNorm2d of a model trained from scratch "
            "does not normalise at all (drop --frozen-bn, or give pretrained --weights)"
        )
    return args


def resolve_defaults(args: argparse.Namespace, device_type: str, world_size: int) -> None:
    """Fill the flags left unset with the device's defaults (in place)."""
    for key, value in DEVICE_DEFAULTS[device_type].items():
        if getattr(args, key, "absent") is None:
            if key == "batch_size" and device_type == "cuda":
                value *= world_size
            if key == "workers" and device_type == "cuda":
                per_node = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
                value = max(1, min(value, (os.cpu_count() or 2) // max(1, per_node) - 1))
            setattr(args, key, value)
    if getattr(args, "input", "absent") is None:
        args.input = "canvas" if args.loss == "batched" else "transform"
    if getattr(args, "input", None) == "canvas" and getattr(args, "loss", "batched") != "batched":
        raise UsageError(
            "--input canvas needs --loss batched (torchvision's loss runs inside the model, "
            "behind its own transform): drop --input canvas, or use --loss batched"
        )
    if getattr(args, "compile", False) and args.input != "canvas":
        raise UsageError(
            "--compile needs --input canvas (fixed shapes; the transform path pads every "
            "batch to its own size and would recompile)"
        )
    if getattr(args, "lr", "absent") is None:
        args.lr = 2e-3 if args.optimizer == "adamw" else 0.01
    if getattr(args, "sync_every", "absent") is None:
        args.sync_every = args.log_every


def scaled_lr(args: argparse.Namespace) -> float:
    """The peak rate the optimizer uses: --lr, scaled linearly in the global batch from
    LR_REFERENCE_BATCH under --lr-scale linear (so more GPUs keep the recipe's rate per image)."""
    if args.lr_scale == "linear":
        return args.lr * args.batch_size / LR_REFERENCE_BATCH
    return args.lr
