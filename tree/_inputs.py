"""Check the inputs of fit and predict: ``X`` as columns, the labels, the sample weights."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.exceptions import DataConversionWarning
from sklearn.utils import compute_sample_weight
from sklearn.utils.validation import _check_sample_weight

DEFAULT_MISSING = ("?",)


def missing_mask(values: np.ndarray, missing=DEFAULT_MISSING) -> np.ndarray:
    """None, NaN, pd.NA, NaT and the strings in *missing* are missing."""
    mask = np.asarray(pd.isna(values), dtype=bool)
    if values.dtype == object and missing:
        rest = ~mask  # compare only real values: pd.NA == "?" has no truth value
        found = pd.Index(values[rest], dtype=object).isin(list(missing))
        mask[rest] = np.asarray(found, dtype=bool)
    return mask


def not_a_value(name, exc):
    return TypeError(
        f"column {name!r}: each argument must be a string or a number (or a bool, or missing); "
        f"{exc}"
    )


def columns_of(X, who: str = "ID3Classifier", arrays: bool = False):
    """Split *X* into 1-D columns; return ``(columns, names, names_in)``.

    ``names`` are the column names of a DataFrame (as strings) or ``x0, x1, ...``;
    ``names_in`` is the object array of column names when they are all strings, else None.
    A DataFrame's columns are Series; with *arrays*, those pandas holds as a ``Categorical``
    or as a NumPy array of numbers or bools are that array instead (no Series is built: a
    predict on a few thousand rows would spend a tenth of its time building them).

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
        get = getattr(X, "_get_column_array", None) if arrays else None  # pandas' own access
        cols = (
            [col for _, col in X.items()]
            if get is None
            else [_array(X, j, get) for j in range(n_cols)]
        )
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


def _array(frame, j, get):
    values = get(j)
    if isinstance(values, pd.Categorical) or (
        isinstance(values, np.ndarray) and values.ndim == 1 and values.dtype.kind in "biuf"
    ):
        return values
    return frame.iloc[:, j]


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
            DataConversionWarning(
                "A column-vector y was passed when a 1d array was expected. Please change "
                "the shape of y to (n_samples,), for example using ravel()."
            ),
            stacklevel=3,
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


def row_weights(sample_weight, class_weight, y_codes, classes) -> np.ndarray:
    """Each row's weight: ``sample_weight`` (checked by scikit-learn) times its class weight.

    ``class_weight`` is None, ``"balanced"`` (``n_rows / (n_classes * rows of the class)``, as
    in scikit-learn) or a dict from class label to weight.

    >>> row_weights(None, "balanced", np.array([0, 0, 0, 1]), np.array(["a", "b"])).tolist()
    [0.6666666666666666, 0.6666666666666666, 0.6666666666666666, 2.0]
    """
    n = len(y_codes)
    w = _check_sample_weight(sample_weight, np.empty((n, 0)), dtype=np.float64, copy=True)
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("sample_weight must be finite and non-negative")
    if class_weight is not None:
        if not (isinstance(class_weight, dict) or class_weight == "balanced"):
            raise ValueError(
                f'class_weight must be None, "balanced" or a dict; got {class_weight!r}'
            )
        w = w * compute_sample_weight(class_weight, classes[y_codes])
    if not np.any(w > 0):
        raise ValueError("sample_weight (times class_weight) is zero for every row")
    return w
