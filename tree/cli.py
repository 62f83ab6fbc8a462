"""``python -m tree``: fit a tree on a CSV file, predict with a saved one, show one.

    python -m tree fit tree/data/mails.csv --target label --log-base 10 --trace --out model.json
    python -m tree fit data.csv --target y --criterion gain_ratio --prune error   # C4.5
    python -m tree predict model.json new_mails.csv --out predictions.csv
    python -m tree show model.json [--dot] [--png tree.png]

Exit status 0 on success, 2 for a user mistake (a bad flag, a missing target column, an empty
or unreadable CSV, a file that is not one of our models, data the model cannot use, an output
path that would overwrite an input or cannot be written), 1 when Graphviz's dot is missing or
fails. Output paths are checked before any work is done, and files are written whole (to a
temporary file renamed into place). ``--debug`` (or ``TREE_DEBUG=1``) shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import traceback
from pathlib import Path

import pandas as pd

from ._entropy import CRITERIA

# The estimator, its exports and model files import scikit-learn (a second): they are
# imported where a command needs them, so --help and early mistakes answer at once.


class UsageError(Exception):
    """A problem with the user's input: reported on stderr, exit status 2."""


EXIT_CODES = """exit status:
  0  done
  1  an environment problem (Graphviz's dot missing or failing)
  2  a user mistake: bad flags, data or model files, or an output path that would overwrite
     an input or cannot be written (one line on stderr: error: ...; --debug shows the traceback)
"""


def read_csv(path: str, missing=("?",)) -> pd.DataFrame:
    """Read *path*; empty fields, ``NA``, ``NaN`` and the *missing* strings are missing values."""
    try:
        df = pd.read_csv(path, na_values=list(missing), skipinitialspace=True)
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
        prog="python -m tree",
        description="ID3 and C4.5 decision trees on CSV files.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True)

    fit = sub.add_parser(
        "fit",
        help="fit a tree on a CSV file and print it",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fit.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
    )
    fit.add_argument("data", help="CSV file with a header row")
    fit.add_argument("--target", required=True, help="the column to predict")
    fit.add_argument("--criterion", choices=CRITERIA, default="entropy")
    fit.add_argument("--log-base", type=float, default=2.0, help="2 (bits) by default")
    fit.add_argument("--max-depth", type=int, default=None)
    fit.add_argument("--min-samples-split", type=int, default=2)
    fit.add_argument("--min-samples-leaf", type=int, default=1)
    fit.add_argument("--max-leaf-nodes", type=int, default=None)
    fit.add_argument("--min-gain", type=float, default=0.0)
    fit.add_argument("--class-weight", choices=["balanced"], default=None)
    fit.add_argument(
        "--missing",
        choices=["auto", "fractional", "stop"],
        default="auto",
        help="rows missing the split's value: down every branch by weight (C4.5) or stop there "
        "(ID3); auto: fractional for gain_ratio or --prune error",
    )
    fit.add_argument(
        "--missing-values",
        default="?",
        metavar="S,S",
        help='strings that mean missing besides empty fields and NA ("?" by default; "" for none)',
    )
    fit.add_argument("--prune", choices=["error"], default=None, help="C4.5's error-based pruning")
    fit.add_argument("--confidence", type=float, default=0.25, help="C4.5's CF for --prune error")
    fit.add_argument("--ccp-alpha", type=float, default=0.0, help="cost-complexity pruning")
    fit.add_argument(
        "--categorical",
        default="",
        metavar="COL,COL",
        help="numeric columns to split one branch per value instead of by thresholds",
    )
    fit.add_argument(
        "--categorical-split",
        choices=["multiway", "subsets"],
        default="multiway",
        help="one branch per value, or C4.5's subsets of values",
    )
    fit.add_argument("--out", metavar="MODEL.json", help="save the fitted tree as JSON")
    fit.add_argument(
        "--trace",
        action="store_true",
        help="print every node's candidate attributes, their tables and the choice",
    )

    predict = sub.add_parser(
        "predict",
        help="predict a CSV file's rows with a saved tree",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    predict.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
    )
    predict.add_argument("model", help="a MODEL.json written by fit --out")
    predict.add_argument("data", help="CSV file with the model's feature columns")
    predict.add_argument(
        "--out", metavar="FILE.csv", help="write here instead of stdout (never the model or data)"
    )
    predict.add_argument("--proba", action="store_true", help="add one column per class")

    show = sub.add_parser(
        "show",
        help="print a saved tree",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    show.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
    )
    show.add_argument("model", help="a MODEL.json written by fit --out")
    show.add_argument("--dot", action="store_true", help="print Graphviz DOT instead of text")
    show.add_argument("--png", metavar="FILE.png", help="render with Graphviz dot to FILE.png")
    return parser


def _same_file(a: Path, b: str) -> bool:
    try:
        return a.resolve() == Path(b).resolve() or (a.exists() and a.samefile(b))
    except OSError:
        return False


def check_output(path: str, flag: str, inputs: dict) -> Path:
    """Check before any work that *path* can be written and is none of the *inputs*.

    *inputs* maps each input file to what it is ("the model", "the data"). A missing folder
    is fine when it can be created (``write_whole`` creates it).
    """
    out = Path(path)
    for name, what in inputs.items():
        if _same_file(out, name):
            raise UsageError(f"{flag} {path} is {what} ({name}): refusing to overwrite it")
    if out.is_dir():
        raise UsageError(f"{flag} {path} is a folder; give a file name")
    if out.exists() and not os.access(out, os.W_OK):
        raise UsageError(f"{flag} {path} exists and is not writable")
    folder = out.absolute().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError(f"{flag} {path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: the folder {folder} is not writable")
    return out


def write_whole(path: Path, text: str) -> None:
    """Write *text* to a temporary file beside *path*, then rename it into place."""
    path.absolute().parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.absolute().parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _fit(args) -> None:
    out = check_output(args.out, "--out", {args.data: "the data"}) if args.out else None
    from ._classifier import ID3Classifier
    from ._export import export_text
    from ._io import to_json

    missing = tuple(v for v in args.missing_values.split(",") if v)
    df = read_csv(args.data, missing)
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
        min_samples_leaf=args.min_samples_leaf,
        max_leaf_nodes=args.max_leaf_nodes,
        min_gain=args.min_gain,
        categorical_features=categorical or None,
        categorical_split=args.categorical_split,
        class_weight=args.class_weight,
        missing=args.missing,
        missing_values=list(missing),
        prune=args.prune,
        confidence=args.confidence,
        ccp_alpha=args.ccp_alpha,
    )
    X, y = df.drop(columns=[args.target]), df[args.target]

    def show(block):
        print(block + "\n")

    clf.fit(X, y, trace=show if args.trace else None)
    print(export_text(clf))
    if out is not None:
        write_whole(out, to_json(clf, target=args.target) + "\n")
        print(f"saved the tree to {args.out}", file=sys.stderr)


def _load(path):
    from ._io import ModelFileError, load_with_meta

    try:
        return load_with_meta(path)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ModelFileError as exc:
        raise UsageError(str(exc)) from None


def _predict(args) -> None:
    inputs = {args.model: "the model", args.data: "the data"}
    out_path = check_output(args.out, "--out", inputs) if args.out else None
    clf, meta = _load(args.model)
    df = read_csv(args.data, clf._missing_strings())
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
    if out_path is None:
        out.to_csv(sys.stdout, index=False)
    else:
        write_whole(out_path, out.to_csv(index=False))
        print(f"wrote {len(out)} predictions to {args.out}", file=sys.stderr)


def _show(args) -> int:
    from ._export import export_graphviz, export_png, export_text

    if args.png:
        check_output(args.png, "--png", {args.model: "the model"})
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
    debug = args.debug or os.environ.get("TREE_DEBUG", "") not in ("", "0")
    try:
        if args.command == "fit":
            _fit(args)
        elif args.command == "predict":
            _predict(args)
        else:
            return _show(args)
    except (UsageError, ValueError, TypeError) as exc:  # ours, and the estimator's checks
        if debug:
            traceback.print_exc()
        first = str(exc).strip().splitlines()
        print(f"error: {first[0] if first else type(exc).__name__}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. piped into head: stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:  # writing an output that passed the checks (disk full, say)
        if debug:
            traceback.print_exc()
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
