"""PostgreSQL fixtures for the publishing tests: a throw-away database per test."""

from __future__ import annotations

import os
import uuid

import pytest

from tests.conftest import require_service

PG_SERVER = os.environ.get("INTERESTFLOW_TEST_PG_SERVER", "postgresql://postgres@127.0.0.1:5432")


@pytest.fixture(scope="session")
def pg_server() -> str:
    from ml.orchestration.scaleout import database_url, pg_reachable

    require_service(pg_reachable(database_url(PG_SERVER, "postgres")), f"PostgreSQL at {PG_SERVER}")
    return PG_SERVER


@pytest.fixture()
def pg_warehouse(pg_server: str, tmp_path, monkeypatch: pytest.MonkeyPatch):
    """A fresh, empty PostgreSQL warehouse database for one test (dropped afterwards)."""
    from ml.orchestration.scaleout import create_database, database_url, drop_database
    from ml.warehouse import Warehouse

    name = f"ift_publish_{uuid.uuid4().hex[:10]}"
    create_database(pg_server, name)
    url = database_url(pg_server, name)
    monkeypatch.setenv("INTERESTFLOW_WAREHOUSE", url)
    monkeypatch.setenv("INTERESTFLOW_ARTIFACTS", str(tmp_path / "artifacts"))
    yield Warehouse(url)
    drop_database(pg_server, name)
