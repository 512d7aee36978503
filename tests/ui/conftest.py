"""Fixtures for the UI data-access tests: the same small warehouse on DuckDB and on PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_service
from tests.ui.ui_warehouse import Built, build

PG_SERVER = os.environ.get("INTERESTFLOW_TEST_PG_SERVER", "postgresql://postgres@127.0.0.1:5432")


@pytest.fixture(scope="module")
def ui_duckdb(tiny_shop: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Built]:
    """(Warehouse, what was written) for a fresh DuckDB file."""
    from ml import config
    from ml.warehouse import Warehouse

    base = tmp_path_factory.mktemp("ui-duckdb")
    wh = Warehouse(f"duckdb:///{base / 'warehouse.duckdb'}")
    return wh, build(wh, tiny_shop, base, docs_root=config.state_dir() / "ui-tests")


def _pg_reachable() -> bool:
    import psycopg

    try:
        with psycopg.connect(f"{PG_SERVER}/postgres", connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="module")
def ui_postgres(tiny_shop: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, Built]]:
    """(Warehouse, what was written) for a throw-away PostgreSQL database (dropped afterwards)."""
    import psycopg

    from ml import config
    from ml.warehouse import Warehouse

    require_service(_pg_reachable(), f"PostgreSQL at {PG_SERVER}")
    name = f"ift_ui_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as con:
        con.execute(f"create database {name}")
    try:
        wh = Warehouse(f"{PG_SERVER}/{name}")
        base = tmp_path_factory.mktemp("ui-postgres")
        yield wh, build(wh, tiny_shop, base, docs_root=config.state_dir() / "ui-tests")
    finally:
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as con:
            con.execute(f"drop database if exists {name} with (force)")
