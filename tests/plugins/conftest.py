"""Fixtures for the plugin tests: Airflow's auth manager and tokens, the plugin app on a small
warehouse, and a session warehouse that went through the real pipeline."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from ml import config

# Airflow puts the plugins folder on sys.path (settings.prepare_syspath_for_config_and_plugins);
# the tests import the plugin package the same way.
if str(config.PLUGINS_DIR) not in sys.path:
    sys.path.append(str(config.PLUGINS_DIR))


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """The session's Airflow metadata DB, migrated (token checks read its revoked_token table)."""
    import subprocess

    from ml.orchestration.local import airflow_bin

    proc = subprocess.run([airflow_bin(), "db", "migrate"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="session")
def auth_manager(airflow_db: None) -> Any:
    """Airflow's configured auth manager (the simple one, users from the session's config)."""
    from airflow.api_fastapi.app import init_auth_manager

    return init_auth_manager()


@pytest.fixture(scope="session")
def tokens(auth_manager: Any) -> dict[str, str]:
    """JWTs the way Airflow's login issues them: admin, viewer, no role, and an expired one."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return {
        "admin": auth_manager.generate_jwt(SimpleAuthManagerUser(username="admin", role="admin")),
        "viewer": auth_manager.generate_jwt(SimpleAuthManagerUser(username="vera", role="viewer")),
        "no_role": auth_manager.generate_jwt(SimpleAuthManagerUser(username="nora", role=None)),
        "expired": auth_manager.generate_jwt(
            SimpleAuthManagerUser(username="admin", role="admin"), expiration_time_in_seconds=-3600
        ),
    }


@pytest.fixture(scope="module")
def built_app(tiny_shop: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    """(plugin FastAPI app, what was written) on a small DuckDB warehouse."""
    from interestflow_ui.app import create_app
    from ml.ui.reader import WarehouseReader
    from ml.warehouse import Warehouse
    from tests.ui.ui_warehouse import build

    base = tmp_path_factory.mktemp("ui-app")
    wh = Warehouse(f"duckdb:///{base / 'warehouse.duckdb'}")
    built = build(wh, tiny_shop, base, docs_root=config.state_dir() / "ui-tests")
    return create_app(WarehouseReader(wh, snapshot_dir=base / "snaps", refresh_seconds=0.0, quiet_seconds=0.0)), built


def _published(wh: Any) -> bool:
    if not wh.path.exists():
        return False
    with wh.connect(read_only=True) as con:
        if not wh.table_exists(con, "serving", "publish_log"):
            return False
        n = wh.query("select count(*) as n from serving.publish_log where name = ?", ["recommendations"], con)
    return bool(n["n"].iloc[0])


@pytest.fixture(scope="session")
def pipeline_warehouse(pipeline_runs: dict[str, Any]) -> Any:
    """This session's warehouse after the full pipeline run shared by every test area
    (tests/conftest.py::pipeline_runs: the four DAGs on the tiny shop)."""
    from ml.warehouse import Warehouse

    wh = Warehouse.from_env()
    assert _published(wh), "the shared pipeline run published nothing"
    return wh
