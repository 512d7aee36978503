"""ml.frames: the whole-column helpers agree with the pandas/numpy answers they replace."""

import numpy as np
import pandas as pd
import pytest

from ml.frames import codes_in, group_rank, isin, lookup, member, ranks, run_starts, sorted_distinct

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


def test_ranks_and_runs_number_rows_within_their_group():
    assert ranks(np.array([2, 0, 3])).tolist() == [0, 1, 0, 1, 2]
    groups = np.array([5, 5, 1, 1, 1, 5])  # a value may come back in a later run
    assert run_starts(groups).tolist() == [True, False, True, False, False, True]
    assert group_rank(groups).tolist() == [0, 1, 0, 1, 2, 0]
    assert group_rank(np.zeros(0, dtype=np.int64)).tolist() == [] and run_starts(np.zeros(0)).tolist() == []


def test_member_lookup_and_codes_find_keys_or_say_absent():
    sorted_keys = np.array([2, 5, 9])
    found, pos = member(np.array([5, 7, 10, 2]), sorted_keys)
    assert found.tolist() == [True, False, False, True] and pos[found].tolist() == [1, 0]
    assert member(np.array([1]), np.zeros(0, dtype=np.int64))[0].tolist() == [False]
    values = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])  # rows come back whole
    assert lookup(np.array([9, 4]), sorted_keys, values, 0.0).tolist() == [[3.0, 30.0], [0.0, 0.0]]
    assert lookup(np.array([9, 4]), sorted_keys, values[:, 1], -1.0).tolist() == [30.0, -1.0]
    assert codes_in(["b", "z", "a", "b"], pd.Index(["a", "b"])).tolist() == [1, -1, 0, 1]
