"""The same dbt project on the PostgreSQL target: it builds (models, unit and data tests) in a
database of its own, and its marts hold the same rows as on DuckDB."""

from __future__ import annotations

import os
import uuid

import pandas as pd
import pytest

from tests.conftest import require_service

pytestmark = [pytest.mark.dbt, pytest.mark.integration, pytest.mark.slow]

PG = os.environ.get("INTERESTFLOW_TEST_PG", "postgresql://postgres@127.0.0.1:5432")


def _admin():
    import psycopg

    try:
        return psycopg.connect(f"{PG}/postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        return None


@pytest.fixture()
def pg_warehouse():
    con = _admin()
    require_service(con is not None, f"PostgreSQL at {PG}")
    name = f"interestflow_test_{uuid.uuid4().hex[:8]}"
    con.execute(f"create database {name}")
    from ml.warehouse import Warehouse

    try:
        yield Warehouse(f"{PG}/{name}")
    finally:
        con.execute(f"drop database if exists {name} with (force)")
        con.close()


def test_postgres_target_builds_and_matches_duckdb(pg_warehouse, built_duckdb, tiny_shop, tmp_path, caplog):
    from ml.features.dbt import build
    from ml.ingest.landing import ingest_paths

    ingest_paths([tiny_shop], pg_warehouse, gate=False)
    result = build(pg_warehouse, target_path=tmp_path / "target")
    assert result.returncode == 0 and "ERROR=0" in result.output
    duck, _ = built_duckdb
    for name in (
        "interaction_events",
        "interactions",
        "item_features",
        "user_features",
        "user_interest_profile",
        "session_categories",
        "category_transition_counts",
        "training_snapshots",
    ):
        n_pg = int(pg_warehouse.query(f"select count(*) as n from marts.{name}")["n"].iloc[0])
        n_duck = int(duck.query(f"select count(*) as n from marts.{name}")["n"].iloc[0])
        assert n_pg == n_duck, name
    # same numbers, not only the same counts
    q = "select sum(decayed_weight) as s from marts.interactions"
    assert float(pg_warehouse.query(q)["s"].iloc[0]) == pytest.approx(float(duck.query(q)["s"].iloc[0]), rel=1e-9)
    q = "select count(distinct snapshot_id) as n, min(snapshot_id) as s from marts.training_snapshots"
    assert pg_warehouse.query(q)["s"].iloc[0] == duck.query(q)["s"].iloc[0]  # the id is a hash of the data
    # scoring reads marts.interactions on PostgreSQL too (the same weights as aggregating)
    from tests.dbt.test_scoring_reads import check_mart_path

    check_mart_path(pg_warehouse, caplog)
    # the gates and the fits read typed bulk frames on PostgreSQL: the same frames as row by row
    staged = ("event_id", "event_at", "user_id", "event_type", "item_id", "search_query", "price", "quantity")
    staged += ("rating", "slot_position", "ingested_at")
    for table, cols, where, params in (
        ("staging.stg_shop__events", staged, None, None),
        ("staging.stg_shop__events", staged, "event_at > ?", [pd.Timestamp("2026-10-15")]),
        ("marts.interaction_events", ("user_id", "item_id", "event_type", "event_at", "weight"), None, None),
        ("marts.user_features", ("user_id", "country", "recency_days", "n_sessions", "monetary"), None, None),
    ):
        listed = ", ".join(cols)
        plain = pg_warehouse.query(f"select {listed} from {table}" + (f" where {where}" if where else ""), params)
        typed = pg_warehouse.read_table(table, None, cols, where, params)
        assert len(typed) > 0
        # (rows in one order: a scan's order is not fixed between two queries)
        typed, plain = (f.sort_values(list(cols)).reset_index(drop=True) for f in (typed, plain))
        pd.testing.assert_frame_equal(typed, plain, check_exact=True)
