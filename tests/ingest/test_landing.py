import json

import pandas as pd
import pytest

from ml.ingest.landing import BatchBlocked, LandingFileError, ingest_file, ingest_paths

pytestmark = pytest.mark.unit


def _counts(wh, table):
    return int(wh.query(f"select count(*) as n from raw.{table}")["n"].iloc[0])


def test_tiny_shop_lands_completely_and_reingest_is_a_no_op(tiny_shop, warehouse):
    first = ingest_paths([tiny_shop], warehouse)
    assert [r.table for r in first] == ["items", "users", "events"]
    for r in first:
        assert r.rows == r.accepted + r.quarantined
        assert r.quarantined == 0
    n_events = _counts(warehouse, "events")
    assert n_events == first[2].rows
    again = ingest_paths([tiny_shop], warehouse)
    assert [r.status for r in again] == ["already_ingested"] * 3
    assert [r.batch_id for r in again] == [r.batch_id for r in first]
    assert [r.accepted for r in again] == [r.accepted for r in first]
    assert _counts(warehouse, "events") == n_events


def test_bad_rows_are_quarantined_with_reasons_and_good_rows_kept(tiny_shop, warehouse, tmp_path):
    ingest_file(tiny_shop / "items.parquet", warehouse)
    ev = pd.read_parquet(tiny_shop / "events.parquet").head(400).copy()
    ev.loc[0, "event_type"] = "teleport"
    ev.loc[1, "rating"] = 9
    path = tmp_path / "events-bad.parquet"
    ev.to_parquet(path, index=False)
    r = ingest_file(path, warehouse)
    assert r.rows == 400 and r.quarantined == 2 and r.accepted == 398
    assert r.reasons == {"bad_rating": 1, "unknown_event_type": 1}
    q = warehouse.query("select row_number, reason, original from raw.quarantine order by row_number")
    assert q["row_number"].tolist() == [1, 2]
    assert json.loads(q["original"].iloc[0])["event_type"] == "teleport"
    assert _counts(warehouse, "events") == 398


def test_missing_columns_is_a_file_error_that_writes_nothing(tmp_path, warehouse):
    p = tmp_path / "events.csv"
    p.write_text("event_id,user_id\ne1,u1\n")
    with pytest.raises(LandingFileError, match="missing required columns: event_time, event_type"):
        ingest_file(p, warehouse)
    assert not warehouse.path.exists() or _counts_safe(warehouse) == 0


def _counts_safe(wh):
    try:
        return _counts(wh, "events")
    except Exception:
        return 0


def test_blocked_batch_accepts_nothing(tiny_shop, warehouse, tmp_path):
    ingest_file(tiny_shop / "items.parquet", warehouse)
    ev = pd.read_parquet(tiny_shop / "events.parquet").head(100).copy()
    ev.loc[:9, "price"] = -1.0  # 10% bad > 5% threshold
    p = tmp_path / "events-blocked.parquet"
    ev.to_parquet(p, index=False)
    with pytest.raises(BatchBlocked) as exc:
        ingest_file(p, warehouse)
    assert exc.value.report.status == "blocked"
    assert exc.value.report.reasons == {"negative_price": 10}
    assert _counts(warehouse, "events") == 0
