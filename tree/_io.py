"""Save and load fitted trees as JSON (plain data: never pickle, so loading runs no code)."""

from __future__ import annotations

import json
import numbers
from pathlib import Path

import numpy as np

from ._arrays import TreeArrays
from ._classifier import ID3Classifier
from ._encode import FeatureSpec

FORMAT = "tree.ID3Classifier"
VERSION = 2  # 2 added n_rows and weighted counts; 1 still loads
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
        if isinstance(value, dict):  # class_weight: JSON keys are strings, so keep pairs
            params[name] = {"pairs": [[_plain(k, name), _plain(v, name)] for k, v in value.items()]}
        elif isinstance(value, (list, tuple, np.ndarray)):
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
        "tree": {
            **arrays,
            "counts": tree.counts.tolist(),
            "n_rows": tree.n_rows.tolist(),
            "groups": {str(i): m.tolist() for i, m in sorted(tree.groups.items())},
        },
        "meta": meta,
    }


def _fail(source: str, why: str):
    return ModelFileError(f"{source} is not a tree model written by `tree` ({why})")


class _Bad(Exception):
    """A field of the file that is wrong: its path and what is wrong with it."""


def _field(data, key, where, kind=None):
    if not isinstance(data, dict) or key not in data:
        raise _Bad(f"{where}{key}: missing")
    value = data[key]
    if kind is not None and not isinstance(value, kind):
        raise _Bad(f"{where}{key}: expected {kind.__name__ if isinstance(kind, type) else kind}")
    return value


def _int_array(values, name, n=None):
    if not isinstance(values, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in values
    ):
        raise _Bad(f"tree.{name}: expected a list of integers")
    if n is not None and len(values) != n:
        raise _Bad(f"tree.{name}: {len(values)} entries for {n} nodes")
    return np.array(values, dtype=np.int64).reshape(-1)


def _number_array(values, name, shape):
    try:
        arr = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise _Bad(f"tree.{name}: expected numbers") from None
    if arr.shape != shape:
        raise _Bad(f"tree.{name}: shape {arr.shape}, expected {shape}")
    return arr


def _first_wrong(mask):
    return int(np.flatnonzero(mask)[0])


def _check_tree(t, specs, n_classes, version) -> TreeArrays:
    """Every index in range and every node where breadth-first order puts it."""
    feature = _int_array(_field(t, "feature", "tree."), "feature")
    n = len(feature)
    if n == 0:
        raise _Bad("tree.feature: no nodes")
    ints = {k: _int_array(_field(t, k, "tree."), k, n) for k in _ARRAYS if k != "threshold"}
    raw = _field(t, "threshold", "tree.", list)
    if len(raw) != n or not all(
        v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in raw
    ):
        raise _Bad(f"tree.threshold: expected {n} numbers or nulls")
    threshold = np.array([np.nan if v is None else v for v in raw], dtype=float)
    counts = _number_array(_field(t, "counts", "tree."), "counts", (n, n_classes))
    if version >= 2:
        n_rows = _number_array(_field(t, "n_rows", "tree."), "n_rows", (n,))
    else:
        n_rows = counts.sum(1)
    for name, arr in (("counts", counts), ("n_rows", n_rows)):
        bad = ~np.isfinite(arr) | (arr < 0)
        if bad.any():
            raise _Bad(
                f"tree.{name}[{_first_wrong(bad.reshape(n, -1).any(1))}]: negative or not finite"
            )
    if counts.sum(1).min() <= 0:
        raise _Bad(f"tree.counts[{_first_wrong(counts.sum(1) <= 0)}]: no training weight")
    f, first, kids = ints["feature"], ints["first_child"], ints["n_children"]
    parent, branch, depth = ints["parent"], ints["branch"], ints["depth"]
    checks = [
        ("feature", (f < -1) | (f >= len(specs))),
        ("n_children", (kids < 0) | ((f < 0) != (kids == 0))),
        ("first_child", np.where(f < 0, first != -1, (first <= np.arange(n)) | (first + kids > n))),
    ]
    for name, bad in checks:
        if bad.any():
            raise _Bad(f"tree.{name}[{_first_wrong(bad)}]: out of range")
    expect_parent = np.full(n, -1)
    inner = np.flatnonzero(f >= 0)
    covered = np.zeros(n, dtype=int)
    for i in inner:
        expect_parent[first[i] : first[i] + kids[i]] = i
        covered[first[i] : first[i] + kids[i]] += 1
    if covered[0] or np.any(covered[1:] != 1):
        raise _Bad(
            f"tree.first_child: node {_first_wrong(covered != np.r_[0, np.ones(n - 1)])} "
            "is not the child of exactly one node"
        )
    for name, bad in (
        ("parent", parent != expect_parent),
        ("depth", depth != np.where(parent >= 0, depth[np.maximum(parent, 0)] + 1, 0)),
        ("parent", (parent >= np.arange(n)) & (parent != -1)),
    ):
        if bad.any():
            raise _Bad(f"tree.{name}[{_first_wrong(bad)}]: does not match the tree's structure")
    numeric = np.array([s.kind == "numeric" for s in specs] + [False])
    width = np.array([2 if s.kind == "numeric" else len(s.categories) for s in specs] + [0])
    pf = f[np.maximum(parent, 0)]
    bad_branch = np.where(parent >= 0, (branch < 0) | (branch >= width[pf]), branch != -1)
    if bad_branch.any():
        raise _Bad(f"tree.branch[{_first_wrong(bad_branch)}]: out of range")
    sib = np.where(parent[1:] == parent[:-1], branch[1:] <= branch[:-1], False)
    if sib.any():
        raise _Bad(f"tree.branch[{_first_wrong(sib) + 1}]: children not in branch order")
    thr_bad = np.where(numeric[f], ~np.isfinite(threshold), ~np.isnan(threshold))
    if thr_bad.any():
        raise _Bad(
            f"tree.threshold[{_first_wrong(thr_bad)}]: numeric splits need a number, others null"
        )
    groups = _check_groups(t.get("groups", {}), f, kids, width, numeric, n)
    if groups:  # a subset split's branches are its groups, not category codes
        sub = np.isin(parent, list(groups))
        bad = sub & (branch >= kids[np.maximum(parent, 0)])
        if bad.any():
            raise _Bad(f"tree.branch[{_first_wrong(bad)}]: out of range")
    return TreeArrays(threshold=threshold, counts=counts, n_rows=n_rows, groups=groups, **ints)


def _check_groups(raw, f, kids, width, numeric, n):
    """Value subsets: node -> each category's branch (-1: not at the node), every branch used."""
    if not isinstance(raw, dict):
        raise _Bad("tree.groups: expected an object")
    groups = {}
    for key, mapping in raw.items():
        where = f"tree.groups[{key}]"
        if not key.isdigit() or int(key) >= n or f[int(key)] < 0 or numeric[f[int(key)]]:
            raise _Bad(f"{where}: not a categorical split")
        i = int(key)
        arr = _int_array(mapping, f"groups[{key}]", int(width[f[i]]))
        if arr.min() < -1 or set(arr[arr >= 0].tolist()) != set(range(int(kids[i]))):
            raise _Bad(f"{where}: branches do not match the node's {int(kids[i])} children")
        groups[i] = arr
    return groups


def _check_features(raw):
    if not isinstance(raw, list) or not raw:
        raise _Bad("features: expected a non-empty list")
    specs = []
    for j, item in enumerate(raw):
        where = f"features[{j}]."
        name = _field(item, "name", where, str)
        kind = _field(item, "kind", where, str)
        categories = _field(item, "categories", where)
        if kind == "numeric":
            if categories is not None:
                raise _Bad(f"{where}categories: must be null for a numeric feature")
        elif kind == "categorical":
            if not isinstance(categories, list) or not all(
                v is None or isinstance(v, (str, int, float, bool)) for v in categories
            ):
                raise _Bad(f"{where}categories: expected a list of values")
            if len({(type(v), v) for v in categories}) != len(categories):
                raise _Bad(f"{where}categories: values repeat")
        else:
            raise _Bad(f"{where}kind: expected 'categorical' or 'numeric', got {kind!r}")
        specs.append(FeatureSpec(name, kind, categories))
    return specs


def from_dict(data, source: str = "the data") -> ID3Classifier:
    """Rebuild a fitted classifier from ``to_dict``'s output; ``ModelFileError`` otherwise.

    Every field is checked before anything is built: an error names the first wrong one.
    """
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _fail(source, f'no "format": "{FORMAT}" field')
    version = data.get("version")
    if version not in (1, VERSION):
        raise _fail(source, f"format version {version!r}, expected {VERSION}")
    try:
        params = _field(data, "params", "", dict)
        params = {
            k: dict(map(tuple, v["pairs"])) if isinstance(v, dict) and "pairs" in v else v
            for k, v in params.items()
        }
        try:
            clf = ID3Classifier(**params)
            clf._check_params()
        except (TypeError, ValueError) as exc:
            raise _Bad(f"params: {exc}") from None
        dtype = _field(data, "classes_dtype", "", str)
        raw_classes = _field(data, "classes", "", list)
        try:
            classes = np.array(raw_classes, dtype=object if dtype == "object" else dtype)
        except (TypeError, ValueError) as exc:
            raise _Bad(f"classes: {exc}") from None
        if classes.ndim != 1 or len(classes) == 0:
            raise _Bad("classes: expected a non-empty list")
        specs = _check_features(_field(data, "features", ""))
        names_in = _field(data, "feature_names_in", "")
        if names_in is not None and names_in != [s.name for s in specs]:
            raise _Bad("feature_names_in: does not match the features' names")
        tree = _check_tree(_field(data, "tree", "", dict), specs, len(classes), version)
    except _Bad as exc:
        raise _fail(source, f"damaged: {exc}") from None
    clf._set_tree(tree, classes, specs)
    clf.n_features_in_ = len(specs)
    if names_in is not None:
        clf.feature_names_in_ = np.asarray(names_in, dtype=object)
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
