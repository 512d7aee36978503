from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def dbt_target(session_dir: Path) -> Path:
    """dbt artefacts of the test session (never the shared dbt/target)."""
    return session_dir / "dbt-target"


@pytest.fixture(scope="session")
def built_duckdb(tiny_shop, session_dir, dbt_target):
    """The tiny shop ingested into a DuckDB warehouse and built with `dbt build` (read it, don't change it)."""
    from ml.features.dbt import build
    from ml.ingest.landing import ingest_paths
    from ml.warehouse import Warehouse

    wh = Warehouse(f"duckdb:///{session_dir / 'dbt-built' / 'warehouse.duckdb'}")
    ingest_paths([tiny_shop], wh, gate=False)
    result = build(wh, target_path=dbt_target)
    return wh, result


@pytest.fixture()
def built_copy(built_duckdb, tmp_path, monkeypatch):
    """A private copy of the built warehouse a test may change (and the default warehouse for it)."""
    import shutil

    from ml.warehouse import Warehouse

    src, _ = built_duckdb
    dst = tmp_path / "warehouse.duckdb"
    shutil.copy(src.path, dst)
    wh = Warehouse(f"duckdb:///{dst}")
    monkeypatch.setenv("INTERESTFLOW_WAREHOUSE", wh.url)
    monkeypatch.setenv("INTERESTFLOW_DATA_DOCS", str(tmp_path / "data_docs"))
    return wh
