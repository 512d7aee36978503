"""Small helpers for whole-column work on pandas frames."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd


def isin(values: Any, allowed: Iterable[Any]) -> np.ndarray:
    """Which of ``values`` are in ``allowed``, as a boolean array (the answer of
    ``Series.isin``; a missing value is never found).

    pandas 3 keeps strings in Arrow arrays, and their ``isin`` against many values is slow:
    120k user ids against 120k took 2 s here, where hashing the same ids as Python objects
    takes 0.1 s. So the distinct values are found first (Arrow's factorize is fast) and only
    those are looked up, as objects."""
    if not isinstance(values, pd.Series | pd.Index | np.ndarray | pd.api.extensions.ExtensionArray):
        values = np.asarray(list(values), dtype=object)
    codes, uniques = pd.factorize(values)
    if isinstance(allowed, np.ndarray | pd.Index | pd.Series | pd.api.extensions.ExtensionArray):
        allowed = np.asarray(allowed, dtype=object).tolist()
    wanted = set(allowed)
    found = np.fromiter((x in wanted for x in np.asarray(uniques, dtype=object).tolist()), bool, len(uniques))
    return np.append(found, False)[codes]  # code -1: a missing value


def sorted_distinct(keys: Any) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct values of ``keys``, how often each occurs), by sorting: numpy 2.4's
    ``np.unique`` hashes when no inverse is asked for, several times slower than a sort on
    millions of int64 keys (2.9 s against 0.04 s for 2M here)."""
    a = np.sort(np.asarray(keys))
    if len(a) == 0:
        return a, np.zeros(0, dtype=np.int64)
    first = np.flatnonzero(np.r_[True, a[1:] != a[:-1]])
    return a[first], np.diff(np.r_[first, len(a)])


def distinct_codes(keys: Any) -> tuple[np.ndarray, np.ndarray]:
    """(position in ``keys`` of one occurrence of each distinct value, in sorted order; each
    key's number among the distinct values), by sorting (see :func:`sorted_distinct`)."""
    k = np.asarray(keys)
    order = np.argsort(k, kind="stable")
    sk = k[order]
    first = np.r_[True, sk[1:] != sk[:-1]] if len(k) else np.zeros(0, dtype=bool)
    code = np.empty(len(k), dtype=np.int64)
    code[order] = np.cumsum(first) - 1
    return order[first], code
