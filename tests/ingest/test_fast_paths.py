"""The whole-column forms of the row rules (Arrow strip, integer timestamp keys) against the
value-by-value forms they replace, on the values that make them differ if anything does."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.ingest.landing import _as_text, _is_blank, _row_keys, _text, _to_num

pytestmark = pytest.mark.unit

# every kind of whitespace str.strip() removes, some it keeps, non-ASCII text and missing values
TRICKY = [
    " a ",
    "\tb\n",
    "\x1cc\x1f",  # ASCII separators: whitespace to str.strip(), not to every Unicode library
    "\x85d\xa0",
    "\u2028e\u3000",
    "\u200bf\u200b",  # zero-width space: not whitespace, kept
    "ünï cødé",
    "",
    "   ",
    None,
    "12",
    " 3.5 ",
    "1e3",
    "x1",
    "\u20037\u2003",
]


def _old_text(s: pd.Series, blank: pd.Series) -> pd.Series:
    return s.astype(object).where(~blank, None).map(_as_text)


def _old_num(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s.map(lambda x: x.strip() if isinstance(x, str) else x), errors="coerce")


@pytest.mark.parametrize("dtype", [object, "str", "string"])
def test_text_matches_value_by_value(dtype: object) -> None:
    s = pd.Series(TRICKY, dtype=dtype)
    blank = _is_blank(s)
    new, old = _text(s, blank), _old_text(s, blank)
    pd.testing.assert_series_equal(new, old)
    assert new[2] == "c" and new[5] == "\u200bf\u200b" and pd.isna(new[7]) and pd.isna(new[9])


def test_text_falls_back_for_mixed_values() -> None:
    s = pd.Series([" a ", 5, 2.5, {"k": 1}, None], dtype=object)  # JSON Lines can mix types
    blank = _is_blank(s)
    new = _text(s, blank)
    pd.testing.assert_series_equal(new, _old_text(s, blank))
    assert new.tolist()[:4] == ["a", "5", "2.5", "{'k': 1}"] and pd.isna(new[4])


@pytest.mark.parametrize(
    "values",
    [
        pd.Series(TRICKY, dtype=object),
        pd.Series(TRICKY, dtype="str"),
        pd.Series([1, 2, 3], dtype="int64"),
        pd.Series([1.5, np.nan, -0.0], dtype="float64"),
        pd.Series([" 4 ", 5, None, 6.5, "z"], dtype=object),
    ],
)
def test_to_num_matches_value_by_value(values: pd.Series) -> None:
    pd.testing.assert_series_equal(_to_num(values), _old_num(values))


def test_row_keys_find_the_same_duplicates_as_text() -> None:
    t = pd.to_datetime(
        ["2026-01-01T10:00:00Z", "2026-01-01T10:00:00.001Z", "2026-01-01T10:00:00Z", None, None],
        utc=True,
        format="ISO8601",
    ).as_unit("ms")
    df = pd.DataFrame(
        {
            "event_time": t,
            "user_id": pd.Series(["u1", "u1", "u1", "u2", "u2"], dtype="str"),
            "price": [1.0, 1.0, 1.0, np.nan, np.nan],
        }
    )
    old = df.astype("string").duplicated(keep="first")
    new = _row_keys(df).duplicated(keep="first")
    assert new.tolist() == old.tolist() == [False, False, True, False, True]
    naive = df.assign(event_time=df["event_time"].dt.tz_localize(None))
    assert _row_keys(naive).duplicated().tolist() == naive.astype("string").duplicated().tolist()


@pytest.mark.parametrize("values", [["a", " "], [" ", None], ["x", "y"]])
def test_text_gives_the_same_column_type(values: list[str | None]) -> None:
    s = pd.Series(values, dtype=object, index=[5, 7])
    blank = _is_blank(s)
    pd.testing.assert_series_equal(_text(s, blank), _old_text(s, blank))
