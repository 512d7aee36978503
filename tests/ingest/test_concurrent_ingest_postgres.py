"""Concurrent ingests on PostgreSQL: two batches into a new database both succeed, event ids stay
unique across batches loading at the same time (an explicit advisory lock, not a side effect of
DDL), and readers of a raw table never wait for a load."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

import pandas as pd
import psycopg
import pytest

from ml.ingest.landing import BatchReport, ingest_file
from ml.orchestration.scaleout import create_database, database_url, drop_database
from ml.warehouse import Warehouse

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)  # the tiny shop's events end on 2026-10-31


def _together(*jobs) -> list[BatchReport]:
    """Run the jobs in threads released at the same instant; re-raise the first error."""
    start = threading.Barrier(len(jobs))
    results: list[object] = [None] * len(jobs)

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = jobs[i]()
        except BaseException as exc:  # collected and re-raised in the main thread
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results  # type: ignore[return-value]


@pytest.mark.parametrize("round_", range(3))
def test_two_ingests_into_a_new_database_both_succeed_and_keep_event_ids_unique(round_, pg_server, tiny_shop, tmp_path):
    name = f"ift_conc_{uuid.uuid4().hex[:10]}"
    create_database(pg_server, name)
    try:
        wh = Warehouse(database_url(pg_server, name))
        items = pd.read_parquet(tiny_shop / "items.parquet")
        items.iloc[:60].to_parquet(tmp_path / "items-a.parquet", index=False)
        items.iloc[60:].to_parquet(tmp_path / "items-b.parquet", index=False)
        # both batches create the schemas and tables at once: neither may fail
        a, b = _together(
            lambda: ingest_file(tmp_path / "items-a.parquet", wh, now=NOW, gate=False),
            lambda: ingest_file(tmp_path / "items-b.parquet", wh, now=NOW, gate=False),
        )
        assert a.accepted + b.accepted == len(items)

        # two event batches overlapping on 100 event ids, loading at the same time
        events = pd.read_parquet(tiny_shop / "events.parquet").head(700)
        events.iloc[:400].to_parquet(tmp_path / "events-a.parquet", index=False)
        events.iloc[300:].to_parquet(tmp_path / "events-b.parquet", index=False)
        a, b = _together(
            lambda: ingest_file(tmp_path / "events-a.parquet", wh, now=NOW, gate=False),
            lambda: ingest_file(tmp_path / "events-b.parquet", wh, now=NOW, gate=False),
        )
        assert a.rows == a.accepted + a.quarantined and b.rows == b.accepted + b.quarantined
        assert a.accepted + b.accepted == 700
        assert sorted([a.reasons, b.reasons], key=len) == [{}, {"duplicate_event_id": 100}]
        n, distinct = wh.query("select count(*) as n, count(distinct event_id) as d from raw.events").iloc[0]
        assert (n, distinct) == (700, 700)
    finally:
        drop_database(pg_server, name)


def test_readers_of_a_raw_table_do_not_wait_for_a_load(pg_warehouse, tiny_shop, tmp_path):
    wh = pg_warehouse
    users = pd.read_parquet(tiny_shop / "users.parquet")
    ingest_file(tiny_shop / "users.parquet", wh, now=NOW, gate=False)  # the tables exist from here on
    n = 200_000
    big = pd.DataFrame(
        {
            "user_id": [f"load{i:07d}" for i in range(n)],
            "signup_time": users["signup_time"].iloc[0],
            "country": "PT",
            "marketing_opt_out": False,
        }
    )
    big.to_parquet(tmp_path / "users-big.parquet", index=False)

    done: list[BatchReport] = []
    loader = threading.Thread(target=lambda: done.append(ingest_file(tmp_path / "users-big.parquet", wh, now=NOW)))
    polls_during_load, waits = 0, []
    with psycopg.connect(wh.url, autocommit=True) as reader:
        reader.execute("set lock_timeout = '500ms'")
        loader.start()
        while loader.is_alive():
            loading = reader.execute(  # the loader's transaction is open
                "select count(*) from pg_stat_activity where datname = current_database() "
                "and pid <> pg_backend_pid() and xact_start is not null"
            ).fetchone()[0]
            t0 = time.perf_counter()
            try:
                reader.execute("select count(*) from raw.users").fetchone()
            except psycopg.errors.LockNotAvailable as exc:
                waits.append(str(exc))
            polls_during_load += bool(loading)
            assert time.perf_counter() - t0 < 5
            time.sleep(0.05)
    loader.join()
    assert done and done[0].accepted == n
    assert polls_during_load > 0, "the load finished before any read overlapped it: raise n"
    assert waits == [], f"a reader waited for the load's lock: {waits[:1]}"
