"""Save and load fitted trees as JSON (plain data: never pickle, so loading runs no code)."""

from __future__ import annotations

import json
import numbers
from pathlib import Path

import numpy as np

from ._build import TreeArrays
from ._classifier import ID3Classifier
from ._encode import FeatureSpec
from ._node import Node

FORMAT = "tree.ID3Classifier"
VERSION = 1
_ARRAYS = ("feature", "threshold", "first_child", "n_children", "branch", "parent", "depth")


class ModelFileError(ValueError):
    """The file is not a model that ``tree`` wrote (or is damaged)."""


def _plain(value, what: str):
    """A JSON-safe Python scalar, or ``ValueError``."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (str, bool, numbers.Integral, numbers.Real)):
        return value
    raise ValueError(f"cannot save {what} {value!r} as JSON: only strings, numbers and booleans")


def to_dict(clf: ID3Classifier, **meta) -> dict:
    """The fitted classifier as plain data (what ``save_json`` writes); *meta* is kept as is."""
    if not hasattr(clf, "tree_"):
        raise ValueError("the classifier is not fitted: call fit before saving it")
    params = {}
    for name, value in clf.get_params().items():
        if name == "categorical_features" and value is not None and not isinstance(value, str):
            params[name] = [_plain(v, name) for v in value]
        else:
            params[name] = _plain(value, name)
    tree = clf.tree_
    arrays = {name: getattr(tree, name).tolist() for name in _ARRAYS}
    arrays["threshold"] = [None if np.isnan(t) else t for t in tree.threshold.tolist()]
    names_in = getattr(clf, "feature_names_in_", None)
    return {
        "format": FORMAT,
        "version": VERSION,
        "params": params,
        "classes": [_plain(c, "class label") for c in clf.classes_.tolist()],
        "classes_dtype": clf.classes_.dtype.str if clf.classes_.dtype != object else "object",
        "feature_names_in": None if names_in is None else list(names_in),
        "features": [
            {
                "name": s.name,
                "kind": s.kind,
                "categories": None
                if s.categories is None
                else [_plain(v, f"category of {s.name!r}") for v in s.categories],
            }
            for s in clf.features_
        ],
        "tree": {**arrays, "counts": tree.counts.tolist()},
        "meta": meta,
    }


def _fail(source: str, why: str):
    return ModelFileError(f"{source} is not a tree model written by `tree` ({why})")


def from_dict(data, source: str = "the data") -> ID3Classifier:
    """Rebuild a fitted classifier from ``to_dict``'s output; ``ModelFileError`` otherwise."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _fail(source, f'no "format": "{FORMAT}" field')
    if data.get("version") != VERSION:
        raise _fail(source, f"format version {data.get('version')!r}, expected {VERSION}")
    try:
        clf = ID3Classifier(**data["params"])
        dtype = data["classes_dtype"]
        classes = np.array(data["classes"], dtype=object if dtype == "object" else dtype)
        specs = [FeatureSpec(f["name"], f["kind"], f["categories"]) for f in data["features"]]
        t = data["tree"]
        threshold = np.array([np.nan if v is None else v for v in t["threshold"]], dtype=float)
        ints = {
            k: np.asarray(t[k], dtype=np.int64).reshape(-1) for k in _ARRAYS if k != "threshold"
        }
        counts = np.asarray(t["counts"], dtype=np.int64).reshape(len(ints["feature"]), -1)
        tree = TreeArrays(threshold=threshold, counts=counts, **ints)
        names_in = data["feature_names_in"]
    except (KeyError, TypeError, ValueError) as exc:
        raise _fail(source, f"damaged: {type(exc).__name__}: {exc}") from None
    n = tree.n_nodes
    if (
        n == 0
        or any(len(a) != n for a in (*ints.values(), threshold))
        or counts.shape != (n, len(classes))
        or tree.feature.max(initial=-1) >= len(specs)
        or any(s.kind not in ("categorical", "numeric") for s in specs)
    ):
        raise _fail(source, "damaged: its arrays do not fit together")
    clf.classes_ = classes
    clf.n_features_in_ = len(specs)
    if names_in is not None:
        clf.feature_names_in_ = np.asarray(names_in, dtype=object)
    clf.features_ = specs
    clf.tree_ = tree
    clf.root_ = Node(tree, specs, classes)
    return clf


def to_json(clf: ID3Classifier, **meta) -> str:
    """The fitted classifier as JSON text."""
    return json.dumps(to_dict(clf, **meta), separators=(",", ":"))


def from_json(text: str, source: str = "the text") -> ID3Classifier:
    """Rebuild a classifier from ``to_json``'s text."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _fail(source, f"not JSON: {exc}") from None
    return from_dict(data, source)


def save_json(clf: ID3Classifier, path, **meta) -> None:
    """Write the fitted classifier to *path* as JSON (``load_json`` reads it back).

    >>> import tempfile, os
    >>> from tree import ID3Classifier
    >>> clf = ID3Classifier().fit([["a"], ["b"]], ["x", "y"])
    >>> path = os.path.join(tempfile.mkdtemp(), "model.json")
    >>> save_json(clf, path)
    >>> load_json(path).predict([["b"]])
    array(['y'], dtype='<U1')
    """
    Path(path).write_text(to_json(clf, **meta) + "\n", encoding="utf-8")


def load_json(path) -> ID3Classifier:
    """Read a classifier that ``save_json`` wrote; ``ModelFileError`` for any other file."""
    return load_with_meta(path)[0]


def load_with_meta(path):
    """Read a saved classifier and the *meta* saved with it."""
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(str(path), "not UTF-8 text") from None
    clf = from_json(text, str(path))
    meta = json.loads(text).get("meta") or {}
    return clf, meta if isinstance(meta, dict) else {}
