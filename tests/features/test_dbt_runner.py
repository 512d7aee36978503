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


@pytest.mark.dbt
def test_the_set_up_parses_the_project_in_process_and_leaves_the_environment_as_it_was(tmp_path, monkeypatch):
    """What the embedded runtime's set-up runs on a fresh clone (ml.orchestration.local.prepare)."""
    import os

    from ml import config
    from ml.features.dbt import parse_in_process
    from ml.orchestration.local import dbt_manifest_fresh

    monkeypatch.delenv("DBT_TARGET", raising=False)
    monkeypatch.setenv("INTERESTFLOW_DUCKDB_PATH", "/elsewhere/w.duckdb")
    monkeypatch.setenv("INTERESTFLOW_WAREHOUSE", f"duckdb:///{tmp_path / 'w.duckdb'}")
    manifest = config.DBT_DIR / "target" / "manifest.json"
    before = manifest.stat().st_mtime_ns if manifest.exists() else 0
    parse_in_process()
    assert manifest.stat().st_mtime_ns > before and dbt_manifest_fresh()
    assert (config.DBT_DIR / "target" / "partial_parse.msgpack").exists()  # what cosmos' tasks reuse
    assert "DBT_TARGET" not in os.environ and os.environ["INTERESTFLOW_DUCKDB_PATH"] == "/elsewhere/w.duckdb"
    assert not (tmp_path / "w.duckdb").exists()  # parsing never opens the warehouse
