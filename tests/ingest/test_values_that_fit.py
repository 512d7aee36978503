"""Values that parse but do not fit the warehouse: an integer beyond 32 bits, a NUL character in
text, an id the UI could not look up. Each is quarantined with its reason on both warehouses and
in every landing format, the rest of the file lands, and ``rows == accepted + quarantined``.

Before these rules, one such value ended ``python -m ml ingest`` with a database traceback
(``out of range for INT32``, ``NumericValueOutOfRange``, ``invalid byte sequence … 0x00``) and
the whole file stalled the pipeline, retry after retry."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from ml import columns as C
from ml.ingest.landing import ingest_file
from ml.ui.views import BadInput, validate_user_id
from tests.ingest.files import write_landing

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)  # the tiny shop's events end on 2026-10-31
WAREHOUSES = [
    pytest.param("warehouse", marks=pytest.mark.unit, id="duckdb"),
    pytest.param("pg_warehouse", marks=pytest.mark.integration, id="postgres"),
]
FORMATS = [".csv", ".jsonl", ".parquet"]

# row -> (column, value, reason): one broken value per row, every numeric column of events
EVENT_BREAKS = {
    3: ("quantity", 2**31, "out_of_range"),
    5: ("rating", -(2**31) - 1, "out_of_range"),
    7: ("position", 2**40, "out_of_range"),
    9: ("query", "red\x00scarf", "bad_text"),
    11: ("user_id", 'u1"; drop table raw.users; --', "bad_id"),
    13: ("item_id", "i" * 100_000, "bad_id"),
    15: ("price", 1e308, "absurd_price"),
    17: ("session_id", "s\x00", "bad_text"),
}
ITEM_BREAKS = {2: ("item_id", "item with spaces", "bad_id"), 4: ("title", "Boots\x00", "bad_text")}
USER_BREAKS = {1: ("user_id", "u" * 65, "bad_id"), 6: ("country", "P\x00T", "bad_text")}


def _break(df: pd.DataFrame, breaks: dict[int, tuple[str, object, str]]) -> pd.DataFrame:
    out = df.copy()
    for row, (col, value, _) in breaks.items():
        out[col] = out[col].astype(object)
        out.loc[row, col] = value
        if col == "item_id" and "event_type" in out:
            out.loc[row, "event_type"] = "view"  # an event that needs an item
    return out


def _check(wh, report, df: pd.DataFrame, breaks: dict[int, tuple[str, object, str]], key: str, table: str) -> None:
    want: dict[str, int] = {}
    for _, _, reason in breaks.values():
        want[reason] = want.get(reason, 0) + 1
    assert report.status == "accepted", report
    assert report.reasons == want
    assert report.rows == len(df) == report.accepted + report.quarantined
    q = wh.query(
        "select row_number, reason from raw.quarantine where batch_id = ? order by row_number", [report.batch_id]
    )
    assert q["row_number"].tolist() == [r + 1 for r in sorted(breaks)]
    assert q["reason"].tolist() == [breaks[r][2] for r in sorted(breaks)]
    good = set(df[key].astype(str)) - {str(df.loc[r, key]) for r in breaks}
    stored = set(wh.query(f"select {key} from raw.{table} where _batch_id = ?", [report.batch_id])[key])
    assert stored == good, "a good row was lost or a bad one accepted"


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("wh_fixture", WAREHOUSES)
def test_values_that_do_not_fit_are_quarantined_and_the_rest_lands(wh_fixture, suffix, tiny_shop, tmp_path, request):
    wh = request.getfixturevalue(wh_fixture)
    items = pd.read_parquet(tiny_shop / "items.parquet").head(80).reset_index(drop=True)
    bad_items = _break(items, ITEM_BREAKS)
    report = ingest_file(write_landing(bad_items, tmp_path / f"items{suffix}"), wh, now=NOW, gate=False)
    _check(wh, report, bad_items, ITEM_BREAKS, "item_id", "items")

    users = pd.read_parquet(tiny_shop / "users.parquet").head(80).reset_index(drop=True)
    bad_users = _break(users, USER_BREAKS)
    report = ingest_file(write_landing(bad_users, tmp_path / f"users{suffix}"), wh, now=NOW, gate=False)
    _check(wh, report, bad_users, USER_BREAKS, "user_id", "users")

    # events of the items that landed, so no good event is an unknown item
    landed = set(items["item_id"]) - {items.loc[r, "item_id"] for r in ITEM_BREAKS}
    events = pd.read_parquet(tiny_shop / "events.parquet")
    events = events[events["item_id"].isin(landed)].head(300).reset_index(drop=True)
    bad_events = _break(events, EVENT_BREAKS)
    report = ingest_file(write_landing(bad_events, tmp_path / f"events{suffix}"), wh, now=NOW, gate=False)
    _check(wh, report, bad_events, EVENT_BREAKS, "event_id", "events")
    # the stored integers are the file's, unchanged
    stored = wh.query("select event_id, quantity, rating, position from raw.events").set_index("event_id")
    good = events.drop(index=list(EVENT_BREAKS)).set_index("event_id")
    for col in ("quantity", "rating", "position"):
        assert stored.loc[good.index, col].astype("Int64").equals(good[col].astype("Int64")), col


@pytest.mark.unit
def test_the_ui_and_ingest_share_one_id_rule():
    for ok in ("u0001", "42", "a.b@shop.example", "X:1-2_3", "u" * 64):
        assert validate_user_id(ok) == ok
        assert pd.Series([ok]).str.fullmatch(C.ID_PATTERN).all()
    for bad in ("", "u" * 65, 'u"1', "-u1", "u 1", "ü1", "u\x001"):
        with pytest.raises(BadInput):
            validate_user_id(bad)
        assert not pd.Series([bad]).str.fullmatch(C.ID_PATTERN).all()
