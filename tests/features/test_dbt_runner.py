"""Running dbt from Python: the profile environment per warehouse, artefacts kept aside, and the
feature benchmark's command line."""

from __future__ import annotations

import pytest

from ml.features.dbt import dbt_env
from ml.warehouse import Warehouse

pytestmark = pytest.mark.unit


def test_profile_environment_follows_the_warehouse_url(tmp_path):
    wh = Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    duck = dbt_env(wh)
    assert duck["DBT_TARGET"] == "duckdb" and duck["INTERESTFLOW_DUCKDB_PATH"] == str(wh.path)
    pg = dbt_env(Warehouse("postgresql://ana:s%40cret@db.internal:6543/shop"))
    assert (pg["DBT_TARGET"], pg["PGHOST"], pg["PGPORT"], pg["PGUSER"], pg["PGDATABASE"]) == (
        "postgres",
        "db.internal",
        "6543",
        "ana",
        "shop",
    )
    assert pg["PGPASSWORD"] == "s@cret"


def test_bench_rejects_unknown_targets(capsys):
    from ml.cli import main

    assert main(["bench", "features", "--targets", "duckdb,oracle", "--size", "tiny"]) == 2
    assert "unknown targets ['oracle']" in capsys.readouterr().out


def test_bench_reads_dbt_totals():
    from ml.bench.features import _dbt_summary

    out = "Finished running 3 view models in 0 hours 6 minutes and 47.56 seconds (407.56s).\nDone. PASS=120 WARN=0 ERROR=1 SKIP=2 NO-OP=0"
    assert _dbt_summary(out) == {"dbt_reported_seconds": 407.56, "pass": 120, "warn": 0, "error": 1, "skip": 2}


def test_postgres_sessions_of_dbt_get_a_larger_work_mem(monkeypatch):
    """dbt on PostgreSQL runs with ``PGOPTIONS=-c work_mem=…`` (256MB unless
    INTERESTFLOW_PG_WORK_MEM says otherwise); a user's own PGOPTIONS is left alone; DuckDB gets
    none. libpq applies it to every session it opens (checked on the real server when reachable)."""
    monkeypatch.delenv("PGOPTIONS", raising=False)
    monkeypatch.delenv("INTERESTFLOW_PG_WORK_MEM", raising=False)
    url = "postgresql://postgres@127.0.0.1:5432/postgres"
    assert dbt_env(Warehouse(url))["PGOPTIONS"] == "-c work_mem=256MB"
    assert "PGOPTIONS" not in dbt_env(Warehouse("duckdb:///tmp/w.duckdb"))
    monkeypatch.setenv("INTERESTFLOW_PG_WORK_MEM", "64MB")
    env = dbt_env(Warehouse(url))
    assert env["PGOPTIONS"] == "-c work_mem=64MB"
    monkeypatch.setenv("PGOPTIONS", "-c statement_timeout=0")
    assert "PGOPTIONS" not in dbt_env(Warehouse(url))

    import psycopg

    from tests.conftest import require_service

    monkeypatch.setenv("PGOPTIONS", env["PGOPTIONS"])
    try:
        con = psycopg.connect(url, connect_timeout=3)
    except psycopg.OperationalError:
        con = None
    require_service(con is not None, "PostgreSQL at 127.0.0.1:5432")
    with con:
        assert con.execute("show work_mem").fetchone()[0] == "64MB"
