"""Encode ``X``: one small integer code per categorical value, ranks or float keys for numbers.

Missing values are ``None``, ``NaN`` (also ``pd.NA``, ``NaT``) and the strings of
``missing_values`` (by default ``"?"``, the UCI convention). Categorical columns are pandas
``category``, ``str``/``string``, ``bool`` and ``object`` columns of strings or mixed values,
plus any column named in ``categorical_features``; every other numeric column is numeric
(binary threshold splits).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._inputs import DEFAULT_MISSING, missing_mask, not_a_value
from ._numbers import (
    FLOAT_MISSING,
    as_float,
    float32_column,
    float_values,
    numeric_ranks,
    smallest_uint,
)

_NUMERIC_INFERRED = {"integer", "floating", "mixed-integer-float", "decimal"}


@dataclass
class FeatureSpec:
    """How one column was read at fit time: its name, its kind, and its categories."""

    name: str
    kind: str  # "categorical" or "numeric"
    categories: list | None = None  # Python scalars, categorical only

    def __post_init__(self):
        self._index = None
        self._same_dtype = None  # the last pandas dtype whose categories matched

    @property
    def index(self) -> pd.Index:
        """The categories as a pandas Index, for mapping values to codes at predict time."""
        if self._index is None:
            self._index = pd.Index(self.categories, dtype=object)
        return self._index


_KEEP_VALUES = 1 << 18  # keep the sorted values of numeric columns up to this many in all


@dataclass
class Encoded:
    """Training data for the builder: ``codes[f][i]`` is row *i*'s value of feature *f*.

    A categorical value is its index in ``FeatureSpec.categories``; a number is its rank among
    the feature's distinct values (``values(f)``). Missing is ``n_values[f]``. Each feature's
    codes are a 1-D array of the smallest of uint8, uint16 and int32 that holds them.

    A float32 column with many distinct values may instead be kept as it is (``floats[f]``,
    the input's own array; ``codes[f]`` None): its codes are then its ``float_keys``, which
    the builder computes from it level by level, and ``n_values[f]`` is ``FLOAT_MISSING``.
    Ranks would copy the data at the size of the input; scikit-learn's tree copies none.
    """

    codes: list  # per feature, (n_rows,) uint8, uint16 or int32, or None (see floats)
    n_values: np.ndarray  # (n_features,) int64
    numeric: np.ndarray  # (n_features,) bool
    uniques: list  # sorted distinct values of numeric features when kept, else None
    columns: list | None = None  # the input columns, to find values not kept
    missing: tuple = DEFAULT_MISSING
    floats: list | None = None  # per feature, its float32 column when keyed on it, else None

    def is_float(self, f: int) -> bool:
        return self.floats is not None and self.floats[f] is not None

    def thresholds(self, f: int, cuts: list) -> list:
        """The numbers of numeric feature *f* at each array of codes in *cuts*."""
        if self.is_float(f):
            return [float_values(c) for c in cuts]
        values = self.values(f, keep=False)
        return [values[c] for c in cuts]

    def values(self, f: int, keep: bool = True) -> np.ndarray:
        """The sorted distinct values of numeric feature *f* (rank ``r`` is ``values(f)[r]``).

        Kept from encoding while they are few (``_KEEP_VALUES`` in all); else read again
        from the input column, the same way (and kept from then on if *keep*).
        """
        if self.uniques[f] is not None:
            return self.uniques[f]
        values = numeric_ranks(self.columns[f], str(f), self.missing, ranks=False)[1]
        if keep:
            self.uniques[f] = values
        return values


def _python_scalar(value):
    return value.item() if isinstance(value, np.generic) else value


def _kind(col, name: str, declared: bool, missing) -> str:
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical"
    if pd.api.types.is_complex_dtype(dtype):
        raise ValueError(f"Complex data not supported (column {name!r})")
    if pd.api.types.is_bool_dtype(dtype) or declared:
        return "categorical"
    if pd.api.types.is_object_dtype(dtype):
        values = np.asarray(col, dtype=object)
        known = values[~missing_mask(values, missing)]
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


def _fit_categorical(col, name: str, missing):
    """Return ``(codes, categories)``; missing rows get code -1."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        categories = [_python_scalar(c) for c in col.cat.categories]
        codes = col.cat.codes.to_numpy().astype(np.int32)
        for q in sorted((categories.index(m) for m in missing if m in categories), reverse=True):
            del categories[q]  # "?" as a category is still missing
            codes = np.where(codes == q, -1, codes - (codes > q)).astype(np.int32)
        return codes, categories
    values = col.to_numpy() if isinstance(col, pd.Series) else np.asarray(col)
    if values.dtype == object or values.dtype.kind in "US":
        values = np.asarray(values, dtype=object)
        lost = missing_mask(values, missing)
        if lost.any():
            values = values.copy()
            values[lost] = None
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
        raise not_a_value(name, exc) from None
    return np.asarray(codes, dtype=np.int32), categories


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


def encode_fit(cols, names, categorical_features=None, missing=DEFAULT_MISSING, floats=False):
    """Encode training columns (from ``columns_of``); return ``(specs, encoded)``.

    With *floats*, float32 columns of many distinct values are kept as they are (see
    ``Encoded``): only the builder's own levels read them, not the trace or C4.5's pruning.

    >>> from tree._inputs import columns_of
    >>> cols, names, _ = columns_of([["long", 1.5], ["short", None], ["?", 0.5]])
    >>> specs, enc = encode_fit(cols, names)
    >>> [(s.name, s.kind, s.categories) for s in specs]
    [('x0', 'categorical', ['long', 'short']), ('x1', 'numeric', None)]
    >>> [c.tolist() for c in enc.codes], enc.codes[0].dtype.name  # missing is n_values: 2
    ([[0, 1, 2], [1, 2, 0]], 'uint8')
    """
    declared = _declared(categorical_features, names)
    specs, uniques, codes = [], [], []
    kept_floats = [None] * len(cols)
    n_values = np.empty(len(cols), dtype=np.int64)
    kept = 0  # sorted numeric values kept so far
    for j, (col, name) in enumerate(zip(cols, names, strict=True)):
        kind = _kind(col, name, declared[j], missing)
        if kind == "categorical":
            c, categories = _fit_categorical(col, name, missing)
            n_values[j] = len(categories)
            specs.append(FeatureSpec(name, kind, categories))
            dtype = col.dtype
            if isinstance(dtype, pd.CategoricalDtype) and len(dtype.categories) == len(categories):
                # its categories are the spec's: predict on this dtype takes its codes as is
                specs[-1]._same_dtype = dtype
            uniques.append(None)
            c = np.where(c < 0, n_values[j], c).astype(smallest_uint(int(n_values[j]) + 1))
        elif floats and (as_float := float32_column(col)) is not None:
            kept_floats[j], c = as_float, None
            n_values[j] = FLOAT_MISSING
            specs.append(FeatureSpec(name, kind))
            uniques.append(None)
        else:
            c, u = numeric_ranks(col, name, missing)
            n_values[j] = len(u)
            specs.append(FeatureSpec(name, kind))
            kept += len(u)
            uniques.append(u if kept <= _KEEP_VALUES else None)
            del u
        codes.append(c)
    numeric = np.array([s.kind == "numeric" for s in specs], dtype=bool)
    any_float = any(f is not None for f in kept_floats)
    floats_kept = kept_floats if any_float else None
    return specs, Encoded(codes, n_values, numeric, uniques, list(cols), missing, floats_kept)


def _training_codes(col, spec: FeatureSpec):
    """A categorical column's codes when its categories are the training ones, else None."""
    dtype = col.dtype
    if spec._same_dtype is not dtype:
        if not dtype.categories.equals(spec.index):
            return None
        spec._same_dtype = dtype  # the next call with this dtype skips the comparison
    return _codes(col)


def _codes(col) -> np.ndarray:
    """The category codes of a categorical Series or ``Categorical`` (-1: missing)."""
    return col.codes if isinstance(col, pd.Categorical) else col.array.codes


def _predict_dtype(cols, specs, slots):
    """The smallest dtype that holds every value exactly.

    With *slots* and only categorical columns, the smallest unsigned integer that holds the
    largest slot. Otherwise float32 when every numeric column is float32 or float16 (and codes
    fit): comparing such a value with a float64 threshold gives what comparing its float64
    copy does, at half the memory to read; float64 else.
    """
    if slots is not None and all(spec.kind == "categorical" for spec in specs):
        return smallest_uint(int(np.max(slots, initial=0)) + 1)
    narrow = all(
        getattr(col, "dtype", None) in (np.float32, np.float16)
        if spec.kind == "numeric"
        else len(spec.categories) < 2**24
        for col, spec in zip(cols, specs, strict=True)
    )
    return np.float32 if narrow else np.float64


def _float_block(cols, specs, dtype):
    """The 2-D float array of *dtype* whose columns *cols* are, when every column is numeric."""
    base = getattr(cols[0], "base", None)
    if not (
        isinstance(base, np.ndarray)
        and base.ndim == 2
        and base.dtype == dtype
        and base.shape[1] == len(cols)
        and all(spec.kind == "numeric" for spec in specs)
    ):
        return None
    start, (row_step, col_step) = base.__array_interface__["data"][0], base.strides
    ok = all(
        isinstance(col, np.ndarray)
        and col.base is base
        and col.shape == base.shape[:1]
        and col.strides == (row_step,)
        and col.__array_interface__["data"][0] == start + j * col_step
        for j, col in enumerate(cols)
    )
    return base if ok else None


def encode_predict(cols, specs: list, missing=DEFAULT_MISSING, slots=None) -> np.ndarray:
    """Encode columns for prediction: an array of shape ``(n_features, n_rows)``.

    A categorical column holds the training code of each value (-1 for a category never
    seen in training); a numeric column its value. Missing values are NaN. With *slots* (per
    feature, its number of branch codes), a categorical column's missing or unseen values
    hold that number instead, the slot ``walk`` sends them to, and a row of zeros follows
    the features (``(n_features + 1, n_rows)``: the row a leaf reads in ``walk``), in memory
    row by row (its transpose is C-contiguous).
    """
    n_rows = len(cols[0])
    dtype = _predict_dtype(cols, specs, slots)
    block = _float_block(cols, specs, dtype)
    if slots is not None and block is not None:  # row-major, as X is: rows' values lie together
        out = np.empty((n_rows, len(cols) + 1), dtype=dtype)
        out[:, :-1] = block
        out[:, -1] = 0
        return out.T
    out = np.empty((len(cols) + (slots is not None), n_rows), dtype=dtype)
    if slots is not None:
        out[-1] = 0
    for j, (col, spec) in enumerate(zip(cols, specs, strict=True)):
        if spec.kind == "numeric":
            if isinstance(col.dtype, pd.CategoricalDtype):
                col = col.astype(object)
            out[j] = as_float(col, spec.name, missing)
            continue
        if isinstance(col.dtype, pd.CategoricalDtype):
            codes = _training_codes(col, spec)
            if codes is not None:  # the training categories: codes as is
                np.copyto(out[j], codes, casting="unsafe")
                lost = codes < 0  # pandas writes -1 for missing; no code reaches the slot count
                if lost.any():
                    out[j][lost] = np.nan if slots is None else slots[j]
                continue
            cats = col.dtype.categories.astype(object)
            mapping = spec.index.get_indexer(cats).astype(np.float64)
            mapping[np.asarray(missing_mask(np.asarray(cats, dtype=object), missing))] = np.nan
            row = np.append(mapping, np.nan)[_codes(col)]
        else:
            values = col.to_numpy() if isinstance(col, pd.Series) else np.asarray(col)
            values = np.asarray(values, dtype=object)
            try:
                row = spec.index.get_indexer(values).astype(np.float64)
            except TypeError as exc:
                raise not_a_value(spec.name, exc) from None
            row[missing_mask(values, missing)] = np.nan
        if slots is not None:  # NaN, -1 (unseen) and codes past the branches: the last slot
            row[~((row >= 0) & (row < slots[j]))] = slots[j]
        out[j] = row
    return out
