"""The events frame's fast paths (one integer sort key, a lookup per distinct id) give what the
plain three-key sort and the per-value dict lookup give."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.recommend.context import events_frame
from ml.recommend.features import events_context

pytestmark = pytest.mark.unit


def _reference(rows: np.ndarray, cols: np.ndarray, ts: np.ndarray) -> pd.DataFrame:
    df = pd.DataFrame({"row": rows.astype(np.int64), "col": cols.astype(np.int64), "ts": ts.astype(np.float64)})
    return df.sort_values(["row", "ts", "col"], kind="stable").reset_index(drop=True)


def test_order_matches_a_stable_three_key_sort_with_ties_nan_and_negative_zero() -> None:
    rng = np.random.default_rng(5)
    n = 50_000
    rows, cols = rng.integers(0, 40, n), rng.integers(0, 25, n)
    ts = rng.integers(0, 15, n).astype(float)
    ts[rng.random(n) < 0.05] = np.nan
    ts[rng.random(n) < 0.05] = -0.0
    got = events_frame(rows, cols, ts)
    pd.testing.assert_frame_equal(got, _reference(rows, cols, ts), check_exact=True)
    assert got["ts"].isna().any() and len(got) == n


def test_order_falls_back_when_the_key_needs_more_than_63_bits() -> None:
    rng = np.random.default_rng(6)
    rows, cols = rng.integers(0, 3, 1000) + 2**40, rng.integers(0, 3, 1000) + 2**30
    ts = rng.random(1000)
    pd.testing.assert_frame_equal(events_frame(rows, cols, ts), _reference(rows, cols, ts), check_exact=True)
    assert len(events_frame(np.zeros(0), np.zeros(0), np.zeros(0))) == 0


def test_events_context_looks_ids_up_as_a_dict_would() -> None:
    df = pd.DataFrame(
        {
            "user_id": pd.Series(["u2", "u1", "ghost", None, "u2"], dtype="str"),
            "item_id": ["i1", "i9", "i1", "i1", "i2"],
            "t": pd.to_datetime(["2026-01-02", "2026-01-01", "2026-01-01", "2026-01-03", "2026-01-01"], utc=True),
        }
    )
    users, items = {"u1": 0, "u2": 1}, {"i1": 1, "i2": 0}  # i9 and ghost are unknown
    got = events_context(df, users, items, "t")
    assert got[["row", "col"]].to_numpy().tolist() == [[1, 0], [1, 1]]
    assert got["ts"].tolist() == [
        pd.Timestamp("2026-01-01", tz="UTC").timestamp(),
        pd.Timestamp("2026-01-02", tz="UTC").timestamp(),
    ]
