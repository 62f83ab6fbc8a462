"""Entropy of a class distribution (the builder computes its own from weighted counts)."""

from __future__ import annotations

import math
import numbers

import numpy as np

CRITERIA = ("entropy", "gain_ratio", "unweighted_entropy")  # the ways a node picks its split


def check_log_base(base: object, name: str = "base") -> float:
    """Return *base* as a float; ``ValueError`` unless it is a positive number other than 1.

    >>> check_log_base(10)
    10.0
    >>> check_log_base(1)
    Traceback (most recent call last):
    ...
    ValueError: base must be a positive number other than 1; got 1
    """
    if (
        isinstance(base, bool)
        or not isinstance(base, numbers.Real)
        or not math.isfinite(base)
        or base <= 0
        or base == 1
    ):
        raise ValueError(f"{name} must be a positive number other than 1; got {base!r}")
    return float(base)


def entropy(counts, base: float = 2) -> float:
    """Entropy of a class-count (or proportion) vector, in units of log *base*.

    The seed's bags, in log base 10: 4 spam and 3 ham mails (the seed writes 0.2965, the first
    four decimals), and a 50/50 bag of marbles (0.301).

    >>> f"{entropy([4, 3], base=10):.6f}"
    '0.296583'
    >>> round(entropy([0.5, 0.5], base=10), 3)
    0.301

    One colour only is no disorder at all; base 2 gives bits.

    >>> entropy([3, 0])
    0.0
    >>> entropy([1, 1, 1, 1])
    2.0

    Counts are normalised, so proportions and counts give the same value. Empty classes add
    nothing, and an empty vector (or all zeros) has entropy 0. Negative or non-finite counts,
    and a base that is not positive or is 1, raise ``ValueError``.

    >>> entropy([2, -1])
    Traceback (most recent call last):
    ...
    ValueError: counts must be finite and non-negative; got [2, -1]
    """
    base = check_log_base(base)
    values = np.asarray(counts, dtype=float)
    if values.ndim != 1:
        raise ValueError(f"counts must be a 1-D vector; got shape {values.shape}")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(f"counts must be finite and non-negative; got {list(counts)!r}")
    total = values.sum()
    if total == 0:
        return 0.0
    p = values[values > 0] / total
    bits = -float(np.sum(p * np.log2(p)))
    if base == 2:
        return bits + 0.0  # never -0.0
    return bits / math.log2(base) + 0.0
