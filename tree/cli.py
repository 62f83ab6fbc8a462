"""``python -m tree``: fit a tree on a CSV file, predict with a saved one, show one.

    python -m tree fit tree/data/mails.csv --target label --log-base 10 --trace --out model.json
    python -m tree predict model.json new_mails.csv --out predictions.csv
    python -m tree show model.json [--dot] [--png tree.png]

Exit status 0 on success, 2 for bad input (a missing target column, an empty or unreadable
CSV, a file that is not one of our models, data the model cannot use), 1 when Graphviz's dot
is missing or fails.
"""

from __future__ import annotations

import argparse
import os
import sys

import pandas as pd

from ._build import CRITERIA
from ._classifier import ID3Classifier
from ._export import export_graphviz, export_png, export_text
from ._io import ModelFileError, load_with_meta, save_json


class UsageError(Exception):
    """A problem with the user's input: reported on stderr, exit status 2."""


def read_csv(path: str) -> pd.DataFrame:
    """Read *path*; empty fields, ``NA``, ``NaN`` and ``?`` are missing values."""
    try:
        df = pd.read_csv(path, na_values=["?"], skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise UsageError(f"{path} is empty: no header and no rows") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"cannot read {path} as CSV: {exc}") from None
    if len(df) == 0:
        raise UsageError(f"{path} has a header but no data rows")
    return df


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tree", description="ID3 decision trees on CSV files."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    fit = sub.add_parser("fit", help="fit a tree on a CSV file and print it")
    fit.add_argument("data", help="CSV file with a header row")
    fit.add_argument("--target", required=True, help="the column to predict")
    fit.add_argument("--criterion", choices=CRITERIA, default="entropy")
    fit.add_argument("--log-base", type=float, default=2.0, help="2 (bits) by default")
    fit.add_argument("--max-depth", type=int, default=None)
    fit.add_argument("--min-samples-split", type=int, default=2)
    fit.add_argument("--min-gain", type=float, default=0.0)
    fit.add_argument(
        "--categorical",
        default="",
        metavar="COL,COL",
        help="numeric columns to split one branch per value instead of by thresholds",
    )
    fit.add_argument("--out", metavar="MODEL.json", help="save the fitted tree as JSON")
    fit.add_argument(
        "--trace",
        action="store_true",
        help="print every node's candidate attributes, their tables and the choice",
    )

    predict = sub.add_parser("predict", help="predict a CSV file's rows with a saved tree")
    predict.add_argument("model", help="a MODEL.json written by fit --out")
    predict.add_argument("data", help="CSV file with the model's feature columns")
    predict.add_argument("--out", metavar="FILE.csv", help="write here instead of stdout")
    predict.add_argument("--proba", action="store_true", help="add one column per class")

    show = sub.add_parser("show", help="print a saved tree")
    show.add_argument("model", help="a MODEL.json written by fit --out")
    show.add_argument("--dot", action="store_true", help="print Graphviz DOT instead of text")
    show.add_argument("--png", metavar="FILE.png", help="render with Graphviz dot to FILE.png")
    return parser


def _fit(args) -> None:
    df = read_csv(args.data)
    if args.target not in df.columns:
        raise UsageError(
            f"{args.data} has no column {args.target!r} (--target); its columns are: "
            + ", ".join(map(str, df.columns))
        )
    categorical = [c for c in args.categorical.split(",") if c]
    clf = ID3Classifier(
        criterion=args.criterion,
        log_base=args.log_base,
        max_depth=args.max_depth,
        min_samples_split=args.min_samples_split,
        min_gain=args.min_gain,
        categorical_features=categorical or None,
    )
    X, y = df.drop(columns=[args.target]), df[args.target]

    def show(block):
        print(block + "\n")

    clf.fit(X, y, trace=show if args.trace else None)
    print(export_text(clf))
    if args.out:
        save_json(clf, args.out, target=args.target)
        print(f"saved the tree to {args.out}", file=sys.stderr)


def _load(path):
    try:
        return load_with_meta(path)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ModelFileError as exc:
        raise UsageError(str(exc)) from None


def _predict(args) -> None:
    clf, meta = _load(args.model)
    df = read_csv(args.data)
    names = [s.name for s in clf.features_]
    lacking = [n for n in names if n not in df.columns]
    if lacking:
        raise UsageError(f"{args.data} lacks the model's column(s): {', '.join(lacking)}")
    X = df[names]
    out = pd.DataFrame({meta.get("target", "prediction"): clf.predict(X)})
    if args.proba:
        proba = clf.predict_proba(X)
        for k, label in enumerate(clf.classes_):
            out[f"p_{label}"] = proba[:, k].round(6)
    out.to_csv(args.out if args.out else sys.stdout, index=False)
    if args.out:
        print(f"wrote {len(out)} predictions to {args.out}", file=sys.stderr)


def _show(args) -> int:
    clf, _ = _load(args.model)
    if args.png:
        try:
            export_png(clf, args.png)
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"wrote {args.png}", file=sys.stderr)
        return 0
    print(export_graphviz(clf), end="") if args.dot else print(export_text(clf))
    return 0


def main(argv=None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "fit":
            _fit(args)
        elif args.command == "predict":
            _predict(args)
        else:
            return _show(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, TypeError) as exc:  # the estimator's checks of the data
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. piped into head: stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0
