"""Landing ingest into a PostgreSQL warehouse: the rows land by ``COPY`` through Arrow and the
batch's keys are checked against the stored ones through a temporary table; both must keep
every value and find every repeat, as on DuckDB."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
import pytest

from ml.ingest.landing import ingest_file

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)  # the tiny shop's events end on 2026-10-31


def test_events_land_whole_and_repeats_across_batches_are_quarantined(tiny_shop, pg_warehouse, warehouse, tmp_path):
    wh = pg_warehouse
    ingest_file(tiny_shop / "items.parquet", wh, now=NOW, gate=False)
    events = pd.read_parquet(tiny_shop / "events.parquet").head(300).reset_index(drop=True)
    # values the CSV path must keep apart: a quoted comma, a quote, an empty query vs a missing one
    events.loc[0, "query"] = 'red, "wool" scarf'
    events.loc[1, "query"] = ""
    events.loc[2, "query"] = None
    extra = events.assign(device=["ios", "web", None] * 100)
    first = extra.head(200)
    first.to_csv(tmp_path / "events-a.csv", index=False)
    a = ingest_file(tmp_path / "events-a.csv", wh, now=NOW, gate=False)
    assert (a.rows, a.accepted, a.quarantined) == (200, 200, 0)

    stored = wh.query("select * from raw.events order by _row_number")
    assert stored["event_id"].tolist() == first["event_id"].tolist()
    assert stored["query"].iloc[0] == 'red, "wool" scarf' and stored["query"].iloc[1:3].isna().all()
    assert json.loads(stored["_extra"].iloc[1]) == {"device": "web"}
    assert stored["_row_number"].tolist() == list(range(1, 201))
    at = pd.to_datetime(stored["event_time"], utc=True)
    assert (at == pd.to_datetime(first["event_time"], utc=True)).all()

    # rows 150..299: the first 50 were stored by batch a and go to quarantine, the rest land
    extra.iloc[150:].to_parquet(tmp_path / "events-b.parquet", index=False)
    b = ingest_file(tmp_path / "events-b.parquet", wh, now=NOW, gate=False)
    assert b.reasons == {"duplicate_event_id": 50} and b.accepted == 100
    assert wh.query("select count(*) as n, count(distinct event_id) as d from raw.events").iloc[0].tolist() == [
        300,
        300,
    ]
    held = wh.query(
        "select row_number, reason from raw.quarantine where batch_id = ? order by row_number", [b.batch_id]
    )
    assert held["row_number"].tolist() == list(range(1, 51))
    assert set(held["reason"]) == {"duplicate_event_id"}

    # the same two batches on DuckDB store the same rows, value for value
    ingest_file(tiny_shop / "items.parquet", warehouse, now=NOW, gate=False)
    for name in ("events-a.csv", "events-b.parquet"):
        ingest_file(tmp_path / name, warehouse, now=NOW, gate=False)
    cols = [c for c in stored.columns if c not in ("_ingested_at", "_batch_id")]
    on_pg = wh.query("select * from raw.events order by event_id")[cols]
    on_duck = warehouse.query("select * from raw.events order by event_id")[cols]
    for c in cols:
        a, b = on_pg[c], on_duck[c]
        if c == "event_time":
            a, b = pd.to_datetime(a, utc=True), pd.to_datetime(b, utc=True)
        elif pd.api.types.is_numeric_dtype(a) or pd.api.types.is_numeric_dtype(b):
            a, b = a.astype(float), b.astype(float)  # an integer column with NULLs reads as float
        assert a.isna().tolist() == b.isna().tolist(), c
        assert a[a.notna()].astype(str).tolist() == b[b.notna()].astype(str).tolist(), c
