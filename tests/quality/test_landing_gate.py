"""The landing gate (GX) inside ingest: a batch whose price distribution drifted is blocked."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
import pytest

from ml.ingest.landing import BatchBlocked, ingest_file, ingest_paths

pytestmark = [pytest.mark.unit, pytest.mark.slow]

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _priced(tiny_shop, prefix: str) -> pd.DataFrame:
    """The shop's carts and purchases (the events with a price) again, under new event ids."""
    ev = pd.read_parquet(tiny_shop / "events.parquet")
    ev = ev[ev["price"].notna()].reset_index(drop=True)
    ev["event_id"] = prefix + ev["event_id"].astype(str)
    return ev


def test_a_batch_with_shifted_prices_trips_the_landing_gate_and_is_blocked(tiny_shop, warehouse, data_docs, tmp_path):
    ingest_paths([tiny_shop], warehouse)  # the reference: the shop's own history passes
    before = int(warehouse.query("select count(*) as n from raw.events")["n"].iloc[0])

    same = _priced(tiny_shop, "same-")  # a carts-and-purchases export: another mix, same prices
    n = len(same)
    assert n >= 500  # enough prices for the drift check
    ok = ingest_file(_write(same, tmp_path / "events-same.parquet"), warehouse, now=NOW)
    assert ok.status == "accepted" and ok.gate_passed and ok.accepted == n

    shifted = _priced(tiny_shop, "shifted-").assign(price=lambda d: d["price"] * 10)  # a currency mix-up
    path = _write(shifted, tmp_path / "events-shifted.parquet")
    with pytest.raises(BatchBlocked) as exc:
        ingest_file(path, warehouse, now=NOW)
    report = exc.value.report
    assert report.status == "blocked" and report.gate_passed is False
    assert report.rows == report.accepted + report.quarantined == n
    assert report.reasons == {"batch_blocked": n}
    assert "expect_column_kl_divergence_to_be_less_than on events.price" in str(exc.value)
    after = int(warehouse.query("select count(*) as n from raw.events")["n"].iloc[0])
    assert after == before + n  # only the good batch

    run = warehouse.query(
        "select passed, n_failed, failures, data_docs_path from quality.gate_runs where gate = 'landing_events' and run_id = ?",
        [report.batch_id],
    ).iloc[0]
    assert not run["passed"] and run["n_failed"] >= 1
    failed = {(f["expectation"], f["column"]) for f in json.loads(run["failures"])}
    assert ("expect_column_kl_divergence_to_be_less_than", "price") in failed
    page = data_docs / "runs" / "landing_events" / f"{report.batch_id}.html"
    assert run["data_docs_path"] == str(page) and "FAILED" in page.read_text()
    gx_pages = list((data_docs / "validations" / "landing_events" / "events").rglob("*.html"))
    assert gx_pages, "GX Data Docs validation page missing"


def _write(df: pd.DataFrame, path):
    df.to_parquet(path, index=False)
    return path
