"""Numeric columns: as float64, as the ranks of their values, or as float keys.

The builder groups rows by ``(node, value, class)``; a number's value is either its rank among
the column's distinct values (a copy of the column in uint8/uint16/int32) or, for a float32
column of many values, its float key, computed from the input's own array level by level.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._inputs import DEFAULT_MISSING, missing_mask, not_a_value

FLOAT_MISSING = 2**32 - 1  # the float key of NaN: past every number's
_FEW_VALUES = 1 << 8  # a float32 column with fewer distinct values is ranked (uint8 codes)


def float_keys(values: np.ndarray) -> np.ndarray:
    """Each float32 value as a uint32 that sorts as the numbers do; NaN is ``FLOAT_MISSING``.

    -0.0 is 0.0 (one value, as in ``np.unique``). A negative number's bits are all flipped,
    a positive number's sign bit is set: the keys of -inf < ... < -0 < 0 < ... < inf ascend.

    >>> x = np.array([-np.inf, -1.5, -0.0, 0.0, 2.0, np.inf, np.nan], dtype=np.float32)
    >>> k = float_keys(x); bool(np.all(np.diff(k[:-1].astype(np.int64)) >= 0)), k[2] == k[3]
    (True, np.True_)
    >>> float_values(k[:-1]).tolist()
    [-inf, -1.5, 0.0, 0.0, 2.0, inf]
    """
    bits = (values + np.float32(0)).view(np.uint32)  # a copy, with -0.0 as 0.0
    flip = bits >> np.uint32(31)
    flip *= np.uint32(0x7FFFFFFF)
    flip |= np.uint32(0x80000000)
    bits ^= flip
    bits[np.isnan(values)] = FLOAT_MISSING
    return bits


def float_values(keys) -> np.ndarray:
    """The numbers of ``float_keys`` (known values only), as float64."""
    keys = np.asarray(keys).astype(np.uint32)
    bits = np.where(keys >= np.uint32(0x80000000), keys ^ np.uint32(0x80000000), ~keys)
    return bits.astype(np.uint32).view(np.float32).astype(np.float64)


def float32_column(col) -> np.ndarray | None:
    """*col* as a float32 array without a copy, when it is one and has many distinct values."""
    if isinstance(col, pd.Series):
        if col.dtype != np.float32:
            return None
        col = col.to_numpy()
    if not isinstance(col, np.ndarray) or col.dtype != np.float32:
        return None
    if len(np.unique(col[:4096])) < _FEW_VALUES and len(np.unique(col)) < _FEW_VALUES:
        return None
    return col


def smallest_uint(top: int):
    return np.uint8 if top < 2**8 else np.uint16 if top < 2**16 else np.int32


def as_float(col, name: str, missing=DEFAULT_MISSING) -> np.ndarray:
    """The column as float64 with NaN for missing values."""
    if isinstance(col, pd.Series):
        if pd.api.types.is_numeric_dtype(col.dtype):
            return col.to_numpy(dtype=np.float64, na_value=np.nan)
        col = col.to_numpy(dtype=object)
    values = np.asarray(col)
    if values.dtype.kind in "biuf":
        return values.astype(np.float64)
    values = values.astype(object)
    lost = missing_mask(values, missing)
    out = np.full(values.shape, np.nan)
    try:
        out[~lost] = values[~lost].astype(np.float64)
    except ValueError as exc:
        raise ValueError(
            f"column {name!r} is numeric (it was numeric when the tree was fitted) but holds "
            f"a value that is not a number: {exc}"
        ) from None
    except TypeError as exc:
        raise not_a_value(name, exc) from None
    return out


def numeric_ranks(col, name, missing, ranks=True):
    """``(ranks, values)``: the sorted distinct values and each row's rank among them.

    A missing value's rank is the number of values. Ranks are the smallest unsigned integer
    type that holds them (int32 past uint16); *ranks* False returns None for them.
    """
    values = as_float(col, name, missing)
    known = ~np.isnan(values)
    if not known.all():
        values = values[known]
    # np.unique(values, return_inverse=True) step by step (the same sort, so the same value
    # stands for 0.0 and -0.0), freeing each row-sized array once used
    perm = values.argsort(kind="quicksort")
    ordered = values[perm]
    del values
    first = np.empty(len(ordered), dtype=bool)
    first[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    u = ordered[first] + 0.0  # -0.0 and 0.0 are one value: 0.0 stands for it
    del ordered
    c = None
    if ranks:
        dtype = smallest_uint(len(u) + 1)
        rank = np.cumsum(first, dtype=dtype)
        rank -= 1
        c = np.empty(len(perm), dtype=dtype)
        c[perm] = rank
        del rank, perm
        if len(c) != len(known):
            c, known_c = np.full(len(known), len(u), dtype=dtype), c
            c[known] = known_c
    narrow = getattr(col, "dtype", None) in (np.float32, np.float16)
    return c, (u.astype(col.dtype) if narrow else u)  # exact: the input's values
