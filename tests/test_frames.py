"""ml.frames: the whole-column helpers agree with the pandas/numpy answers they replace."""

import numpy as np
import pandas as pd
import pytest

from ml.frames import distinct_codes, isin, sorted_distinct

pytestmark = pytest.mark.unit


def test_isin_matches_pandas_with_missing_values_and_arrow_strings():
    values = pd.Series(["a", "b", None, "c", "a", "z"], dtype="str")
    allowed = np.array(["a", "c", "q"], dtype=object)
    assert isin(values, allowed).tolist() == values.isin(allowed).tolist() == [True, False, False, True, True, False]
    assert isin(["x", "y"], {"y"}).tolist() == [False, True]


def test_sorted_distinct_equals_np_unique_with_counts():
    keys = np.random.default_rng(0).integers(0, 50, size=1000)
    distinct, counts = sorted_distinct(keys)
    ref, ref_counts = np.unique(keys, return_counts=True)
    np.testing.assert_array_equal(distinct, ref)
    np.testing.assert_array_equal(counts, ref_counts)
    empty, none = sorted_distinct(np.zeros(0, dtype=np.int64))
    assert len(empty) == len(none) == 0


def test_distinct_codes_number_each_key_by_its_sorted_distinct_value():
    keys = np.array([7, 3, 7, 9, 3, 3, -1])
    where, code = distinct_codes(keys)
    np.testing.assert_array_equal(keys[where], [-1, 3, 7, 9])
    np.testing.assert_array_equal(keys[where][code], keys)
    np.testing.assert_array_equal(code, [2, 1, 2, 3, 1, 1, 0])
    w, c = distinct_codes(np.zeros(0, dtype=np.int64))
    assert len(w) == len(c) == 0
