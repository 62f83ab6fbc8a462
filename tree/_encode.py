"""Check and encode ``X`` and ``y``: one integer code per categorical value, ranks for numbers.

Missing values are ``None``, ``NaN`` (also ``pd.NA``, ``NaT``) and the string ``"?"`` (the UCI
convention). Categorical columns are pandas ``category``, ``str``/``string``, ``bool`` and
``object`` columns of strings or mixed values, plus any column named in
``categorical_features``; every other numeric column is numeric (binary threshold splits).
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

MISSING_STRING = "?"
_NUMERIC_INFERRED = {"integer", "floating", "mixed-integer-float", "decimal"}


@dataclass
class FeatureSpec:
    """How one column was read at fit time: its name, its kind, and its categories."""

    name: str
    kind: str  # "categorical" or "numeric"
    categories: list | None = None  # Python scalars, categorical only

    def __post_init__(self):
        self._index = None

    @property
    def index(self) -> pd.Index:
        """The categories as a pandas Index, for mapping values to codes at predict time."""
        if self._index is None:
            self._index = pd.Index(self.categories, dtype=object)
        return self._index


@dataclass
class Encoded:
    """Training data for the builder: ``codes[f, i]`` is row *i*'s value of feature *f*.

    A categorical value is its index in ``FeatureSpec.categories``; a number is its rank among
    the feature's distinct values (``uniques[f]``). Missing is ``n_values[f]``.
    """

    codes: np.ndarray  # (n_features, n_rows) int32
    n_values: np.ndarray  # (n_features,) int64
    numeric: np.ndarray  # (n_features,) bool
    uniques: list  # sorted distinct values of numeric features, None for categorical


def _python_scalar(value):
    return value.item() if isinstance(value, np.generic) else value


def _not_a_value(name, exc):
    return TypeError(
        f"column {name!r}: each argument must be a string or a number (or a bool, or missing); "
        f"{exc}"
    )


def columns_of(X, who: str = "ID3Classifier"):
    """Split *X* into 1-D columns; return ``(columns, names, names_in)``.

    ``names`` are the column names of a DataFrame (as strings) or ``x0, x1, ...``;
    ``names_in`` is the object array of column names when they are all strings, else None.

    >>> cols, names, names_in = columns_of([["long", 1], ["short", 2]])
    >>> names, names_in, cols[0].tolist()
    (['x0', 'x1'], None, ['long', 'short'])
    """
    if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(
            f"{who} does not accept sparse input (scipy.sparse); "
            "pass a dense array or a DataFrame, e.g. X.toarray()"
        )
    if X is None:
        raise ValueError(f"{who} needs X: a 2-D array-like or a pandas DataFrame, got None")
    if isinstance(X, pd.DataFrame):
        n_rows, n_cols = X.shape
        raw = list(X.columns)
        if len(set(raw)) != len(raw):
            raise ValueError(f"X has duplicate column names: {raw}")
        names = [c if isinstance(c, str) else str(c) for c in raw]
        names_in = np.asarray(raw, dtype=object) if all(isinstance(c, str) for c in raw) else None
        cols = [X.iloc[:, j] for j in range(n_cols)]
    else:
        arr = np.asarray(X)
        if arr.dtype.kind in "US":  # keep Python numbers in mixed lists as numbers
            arr = np.asarray(X, dtype=object)
        if arr.ndim < 2:
            raise ValueError(
                f"Expected a 2-D array, got a {arr.ndim}-D array instead: array={arr!r}.\n"
                "Reshape your data either using array.reshape(-1, 1) if your data has a single "
                "feature or array.reshape(1, -1) if it contains a single sample."
            )
        if arr.ndim > 2:
            raise ValueError(f"Expected a 2-D array, got a {arr.ndim}-D array of {arr.shape}")
        n_rows, n_cols = arr.shape
        names, names_in = [f"x{j}" for j in range(n_cols)], None
        cols = [arr[:, j] for j in range(n_cols)]
    if n_rows == 0:
        raise ValueError(
            f"Found array with 0 sample(s) (shape=({n_rows}, {n_cols})) while a minimum of 1 "
            "is required: X is empty."
        )
    if n_cols == 0:
        raise ValueError(
            f"Found array with 0 feature(s) (shape=({n_rows}, 0)) while a minimum of 1 is required."
        )
    return cols, names, names_in


def _missing_mask(values: np.ndarray) -> np.ndarray:
    """None, NaN, pd.NA, NaT and "?" are missing."""
    mask = np.asarray(pd.isna(values), dtype=bool)
    if values.dtype == object:
        rest = ~mask  # compare only real values: pd.NA == "?" has no truth value
        mask[rest] = np.equal(values[rest], MISSING_STRING).astype(bool)
    return mask


def _kind(col, name: str, declared: bool) -> str:
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical"
    if pd.api.types.is_complex_dtype(dtype):
        raise ValueError(f"Complex data not supported (column {name!r})")
    if pd.api.types.is_bool_dtype(dtype) or declared:
        return "categorical"
    if pd.api.types.is_object_dtype(dtype):
        values = np.asarray(col, dtype=object)
        known = values[~_missing_mask(values)]
        inferred = pd.api.types.infer_dtype(known, skipna=True)
        if inferred == "complex":
            raise ValueError(f"Complex data not supported (column {name!r})")
        return "numeric" if inferred in _NUMERIC_INFERRED else "categorical"
    if pd.api.types.is_string_dtype(dtype):
        return "categorical"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    raise ValueError(
        f"column {name!r} has dtype {dtype}, which ID3Classifier cannot split on; "
        "convert it to numbers or to categories"
    )


def _sorted_uniques(uniques: list) -> list:
    try:
        return sorted(uniques)
    except TypeError:  # mixed types: group by type, deterministic either way
        try:
            return sorted(uniques, key=lambda v: (type(v).__name__, v))
        except TypeError:
            return sorted(uniques, key=lambda v: (type(v).__name__, repr(v)))


def _fit_categorical(col, name: str):
    """Return ``(codes, categories)``; missing rows get code -1."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        categories = [_python_scalar(c) for c in col.cat.categories]
        codes = col.cat.codes.to_numpy().astype(np.int32)
        if MISSING_STRING in categories:  # "?" as a category is still missing
            q = categories.index(MISSING_STRING)
            del categories[q]
            codes = np.where(codes == q, -1, codes - (codes > q)).astype(np.int32)
        return codes, categories
    values = col.to_numpy() if isinstance(col, pd.Series) else np.asarray(col)
    if values.dtype == object or values.dtype.kind in "US":
        values = np.asarray(values, dtype=object)
        missing = _missing_mask(values)
        if missing.any():
            values = values.copy()
            values[missing] = None
    try:
        try:
            codes, uniques = pd.factorize(values, sort=True)
            categories = [_python_scalar(u) for u in uniques]
        except TypeError as exc:
            if "unhashable" in str(exc):
                raise
            codes, uniques = pd.factorize(values, sort=False)
            found = [_python_scalar(u) for u in uniques]
            categories = _sorted_uniques(found)
            remap = np.array([categories.index(v) for v in found] + [-1])
            codes = remap[codes]
    except TypeError as exc:
        raise _not_a_value(name, exc) from None
    return np.asarray(codes, dtype=np.int32), categories


def _as_float(col, name: str) -> np.ndarray:
    """The column as float64 with NaN for missing values."""
    if isinstance(col, pd.Series):
        if pd.api.types.is_numeric_dtype(col.dtype):
            return col.to_numpy(dtype=np.float64, na_value=np.nan)
        col = col.to_numpy(dtype=object)
    values = np.asarray(col)
    if values.dtype.kind in "biuf":
        return values.astype(np.float64)
    values = values.astype(object)
    missing = _missing_mask(values)
    out = np.full(values.shape, np.nan)
    try:
        out[~missing] = values[~missing].astype(np.float64)
    except ValueError as exc:
        raise ValueError(
            f"column {name!r} is numeric (it was numeric when the tree was fitted) but holds "
            f"a value that is not a number: {exc}"
        ) from None
    except TypeError as exc:
        raise _not_a_value(name, exc) from None
    return out


def _declared(categorical_features, names: list) -> np.ndarray:
    """The boolean mask of columns declared categorical."""
    n = len(names)
    mask = np.zeros(n, dtype=bool)
    if categorical_features is None:
        return mask
    if isinstance(categorical_features, str):
        categorical_features = [categorical_features]
    items = list(categorical_features)
    if items and all(isinstance(v, (bool, np.bool_)) for v in items):
        if len(items) != n:
            raise ValueError(
                f"categorical_features is a boolean mask of length {len(items)}, "
                f"but X has {n} columns"
            )
        return np.asarray(items, dtype=bool)
    for item in items:
        if isinstance(item, str):
            if item not in names:
                raise ValueError(
                    f"categorical_features names {item!r}, which is not a column of X "
                    f"(columns: {', '.join(names)})"
                )
            mask[names.index(item)] = True
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            if not -n <= item < n:
                raise ValueError(
                    f"categorical_features index {item} is out of range for {n} columns"
                )
            mask[item] = True
        else:
            raise ValueError(
                "categorical_features must be None, column names, column indices or a boolean "
                f"mask; got {categorical_features!r}"
            )
    return mask


def encode_fit(X, categorical_features=None):
    """Encode training data; return ``(specs, encoded, names_in)``.

    >>> specs, enc, _ = encode_fit([["long", 1.5], ["short", None], ["?", 0.5]])
    >>> [(s.name, s.kind, s.categories) for s in specs]
    [('x0', 'categorical', ['long', 'short']), ('x1', 'numeric', None)]
    >>> enc.codes.tolist()  # missing is n_values: 2 for both columns here
    [[0, 1, 2], [1, 2, 0]]
    """
    cols, names, names_in = columns_of(X)
    declared = _declared(categorical_features, names)
    n_rows = len(cols[0])
    specs, uniques = [], []
    codes = np.empty((len(cols), n_rows), dtype=np.int32)
    n_values = np.empty(len(cols), dtype=np.int64)
    for j, (col, name) in enumerate(zip(cols, names, strict=True)):
        kind = _kind(col, name, declared[j])
        if kind == "categorical":
            c, categories = _fit_categorical(col, name)
            n_values[j] = len(categories)
            specs.append(FeatureSpec(name, kind, categories))
            uniques.append(None)
        else:
            values = _as_float(col, name)
            known = ~np.isnan(values)
            u, inverse = np.unique(values[known], return_inverse=True)
            c = np.full(n_rows, -1, dtype=np.int32)
            c[known] = inverse
            n_values[j] = len(u)
            specs.append(FeatureSpec(name, kind))
            uniques.append(u)
        codes[j] = np.where(c < 0, n_values[j], c)
    numeric = np.array([s.kind == "numeric" for s in specs], dtype=bool)
    return specs, Encoded(codes, n_values, numeric, uniques), names_in


def _caller_level() -> int:
    """The ``stacklevel`` that points a warning at the first caller outside this package."""
    here = os.path.dirname(os.path.abspath(__file__))
    tests = os.path.join(here, "tests")
    frame, level = sys._getframe(2), 2
    while frame is not None:
        name = os.path.abspath(frame.f_code.co_filename)
        if not name.startswith(here) or name.startswith(tests):
            return level
        frame, level = frame.f_back, level + 1
    return level


def check_feature_names(fitted, names_in, who: str) -> None:
    """Raise or warn, with scikit-learn's wording, when *X*'s column names differ from fit's."""
    if fitted is None and names_in is None:
        return
    if fitted is None:
        warnings.warn(
            f"X has feature names, but {who} was fitted without feature names",
            UserWarning,
            stacklevel=_caller_level(),
        )
        return
    if names_in is None:
        warnings.warn(
            f"X does not have valid feature names, but {who} was fitted with feature names",
            UserWarning,
            stacklevel=_caller_level(),
        )
        return
    if len(fitted) == len(names_in) and np.all(fitted == names_in):
        return
    message = "The feature names should match those that were passed during fit.\n"
    unexpected = sorted(set(names_in) - set(fitted))
    missing = sorted(set(fitted) - set(names_in))

    def listing(items):
        lines = [f"- {v}\n" for v in items[:5]]
        return "".join(lines) + ("- ...\n" if len(items) > 5 else "")

    if unexpected:
        message += "Feature names unseen at fit time:\n" + listing(unexpected)
    if missing:
        message += "Feature names seen at fit time, yet now missing:\n" + listing(missing)
    if not unexpected and not missing:
        message += "Feature names must be in the same order as they were in fit.\n"
    raise ValueError(message)


def encode_predict(X, specs: list, fitted_names_in, who: str) -> np.ndarray:
    """Encode *X* for prediction: a float matrix of shape ``(n_features, n_rows)``.

    A categorical column holds the training code of each value; a numeric column its value.
    Missing values, and categories never seen in training, are NaN.
    """
    cols, _, names_in = columns_of(X, who)
    check_feature_names(fitted_names_in, names_in, who)
    if len(cols) != len(specs):
        raise ValueError(
            f"X has {len(cols)} features, but {who} is expecting {len(specs)} features as input."
        )
    out = np.empty((len(cols), len(cols[0])), dtype=np.float64)
    for j, (col, spec) in enumerate(zip(cols, specs, strict=True)):
        if spec.kind == "numeric":
            if isinstance(col.dtype, pd.CategoricalDtype):
                col = col.astype(object)
            out[j] = _as_float(col, spec.name)
            continue
        if isinstance(col.dtype, pd.CategoricalDtype):
            mapping = spec.index.get_indexer(col.cat.categories.astype(object))
            codes = np.append(mapping, -1)[col.cat.codes.to_numpy()]
        else:
            values = col.to_numpy() if isinstance(col, pd.Series) else np.asarray(col)
            try:
                codes = spec.index.get_indexer(np.asarray(values, dtype=object))
            except TypeError as exc:
                raise _not_a_value(spec.name, exc) from None
        out[j] = np.where(codes < 0, np.nan, codes)
    return out


def encode_y(y, n_rows: int, who: str = "ID3Classifier"):
    """Check the labels; return ``(classes, codes)`` with ``classes`` sorted.

    >>> classes, codes = encode_y(["spam", "ham", "spam"], 3)
    >>> classes.tolist(), codes.tolist()
    (['ham', 'spam'], [1, 0, 1])
    """
    if y is None:
        raise ValueError(f"{who} requires y to be passed, but the target y is None.")
    arr = y.to_numpy() if isinstance(y, (pd.Series, pd.DataFrame)) else np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        warnings.warn(
            _data_conversion_warning()(
                "A column-vector y was passed when a 1d array was expected. Please change "
                "the shape of y to (n_samples,), for example using ravel()."
            ),
            stacklevel=_caller_level(),
        )
        arr = arr.ravel()
    if arr.ndim != 1:
        raise ValueError(f"y should be a 1d array, got an array of shape {arr.shape} instead.")
    if arr.dtype.kind == "c":
        raise ValueError("Complex data not supported (in y)")
    if len(arr) != n_rows:
        raise ValueError(
            f"X has {n_rows} rows but y has {len(arr)} labels; they must be the same length "
            f"(inconsistent numbers of samples: [{n_rows}, {len(arr)}])"
        )
    missing = pd.isna(arr)
    if np.any(missing):
        raise ValueError(
            f"y contains {int(np.sum(missing))} missing label(s) (NaN or None), first at row "
            f"{int(np.argmax(missing))}; drop those rows or give them a label"
        )
    kind = arr.dtype.kind
    if kind == "O":
        kind = {"floating": "f", "mixed-integer-float": "f", "complex": "c"}.get(
            pd.api.types.infer_dtype(arr, skipna=False), "O"
        )
        if kind == "c":
            raise ValueError("Complex data not supported (in y)")
    if kind == "f":
        floats = arr.astype(np.float64)
        if not np.all(np.isfinite(floats)) or np.any(floats != np.round(floats)):
            raise ValueError(
                "Unknown label type: continuous. y holds non-integer or infinite numbers; "
                f"{who} is a classifier and needs class labels"
            )
    try:
        classes, codes = np.unique(arr, return_inverse=True)
    except TypeError:
        raise ValueError(
            "Unknown label type: mixed. y mixes labels that cannot be sorted together "
            "(e.g. strings and numbers)"
        ) from None
    return classes, codes.reshape(-1).astype(np.int64)


def _data_conversion_warning():
    try:
        from sklearn.exceptions import DataConversionWarning
    except ImportError:  # scikit-learn is optional
        return UserWarning
    return DataConversionWarning
