"""Shared fixtures. Every test session gets its own state folder, Airflow home and warehouse,
so tests never touch a developer's `.interestflow/` or `.airflow/`."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="interestflow-tests-"))
os.environ["INTERESTFLOW_HOME"] = str(_SESSION_DIR / "state")
os.environ["AIRFLOW_HOME"] = str(_SESSION_DIR / "airflow")
os.environ.pop("INTERESTFLOW_WAREHOUSE", None)
from ml import config  # noqa: E402

config.apply_airflow_env(override=True)
if str(config.DAGS_DIR) not in sys.path:
    sys.path.insert(0, str(config.DAGS_DIR))


# every test carries one of these (pyproject.toml's markers): `-m` selections then mean something
KINDS = ("unit", "dags", "dbt", "integration", "slow", "browser")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = [item.nodeid for item in items if not any(item.get_closest_marker(k) for k in KINDS)]
    if unmarked:
        raise pytest.UsageError(
            f"{len(unmarked)} test(s) carry none of the markers {', '.join(KINDS)} (add a pytestmark): "
            + ", ".join(unmarked[:10])
        )


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require_service(ok: bool, what: str) -> None:
    """Skip when a server is unreachable — but fail under CI=true, where it must be up."""
    if ok:
        return
    if in_ci():
        pytest.fail(f"{what} is unreachable and CI=true: the scale-out tests must run in CI")
    pytest.skip(f"{what} is unreachable; start it to run this test")


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return _SESSION_DIR


@pytest.fixture(scope="session")
def tiny_shop(session_dir: Path) -> Path:
    """The `tiny` synthetic shop as Parquet (seed 7), generated once per session."""
    from ml.shop.generate import write_shop

    out = session_dir / "shop-tiny"
    if not (out / "events.parquet").exists():
        write_shop(out, size="tiny", seed=7)
    return out


@pytest.fixture()
def warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fresh, empty DuckDB warehouse for one test."""
    from ml.warehouse import Warehouse

    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    monkeypatch.setenv("INTERESTFLOW_WAREHOUSE", url)
    monkeypatch.setenv("INTERESTFLOW_ARTIFACTS", str(tmp_path / "artifacts"))
    return Warehouse(url)


@pytest.fixture(scope="session")
def airflow_runtime():
    """Migrated SQLite metadata DB under the session's AIRFLOW_HOME, pool, dbt manifest."""
    from ml.orchestration import local

    return local.prepare()


@pytest.fixture(scope="session")
def pipeline_runs(airflow_runtime, tiny_shop):
    """The four DAGs run for real (dag.test) on the tiny shop, in asset order (retrain_models
    with the cheap candidate set CI passes as run conf)."""
    from ml.orchestration.local import run_dag

    runs = {}
    runs["ingest_events"] = run_dag("ingest_events", {"paths": [str(tiny_shop)]})
    for dag_id in ("build_features", "retrain_models", "publish_recommendations"):
        runs[dag_id] = run_dag(dag_id, LIVING_CONF.get(dag_id, {}) if dag_id == "retrain_models" else {})
    return runs


# cheaper settings for the CI loop than the DAGs' production Params (passed as run conf)
LIVING_CONF = {
    "retrain_models": {
        "candidates": [
            {"model": "popularity", "params": {"half_life_days": 14.0}},
            {"model": "item_knn", "params": {"neighbours": 50, "shrinkage": 10.0}},
        ]
    },
    "finetune_tagger": {
        "label_fraction": 0.7,
        "candidates": [{"model": "naive_bayes", "params": {}}, {"model": "logistic_regression", "params": {}}],
        "test_share": 0.3,
        "min_labels": 2,
    },
    "evaluate_policies": {"n_bootstrap": 50, "propensity_draws": 32},
    "publish_recommendations": {"propensity_draws": 32},
    "publish_audiences": {"copy_lm": {"steps": 40}},
}


@pytest.fixture(scope="session")
def living_shop(airflow_runtime, tiny_shop: Path, session_dir: Path) -> dict:
    """The tiny shop living two days through the real DAGs (set-up with every DAG, then two
    simulated days), in its own state folder; the slot allocator serves, so exploration and its
    propensities are in every slate."""
    from ml.simulate.living import LivingShop, LoopSettings

    state = session_dir / "living"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INTERESTFLOW_HOME", str(state))
        mp.delenv("INTERESTFLOW_WAREHOUSE", raising=False)
        mp.delenv("INTERESTFLOW_ARTIFACTS", raising=False)
        settings = LoopSettings(size="tiny", days=2, visit_share=0.5, policy="slot_allocator", conf=LIVING_CONF)
        shop = LivingShop(tiny_shop, settings)
        reports = shop.run()
        days_dir = shop.days_dir()
    return {"shop": shop, "wh": shop.wh, "reports": reports, "rows": shop.reports(), "days_dir": days_dir}


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

    name = f"ift_test_{uuid.uuid4().hex[:10]}"
    create_database(pg_server, name)
    url = database_url(pg_server, name)
    monkeypatch.setenv("INTERESTFLOW_WAREHOUSE", url)
    monkeypatch.setenv("INTERESTFLOW_ARTIFACTS", str(tmp_path / "artifacts"))
    yield Warehouse(url)
    drop_database(pg_server, name)


@pytest.fixture()
def smtp_server():
    """A local SMTP server (aiosmtpd) that keeps what it receives."""
    import socket

    from aiosmtpd.controller import Controller

    class Sink:
        def __init__(self) -> None:
            self.messages: list = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(envelope)
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = Sink()
    sink.port = port
    # the `interestflow_alerts` Connection pointing at this server (plain SMTP: no TLS, no SSL)
    sink.connection = json.dumps(
        {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": port,
            "extra": {
                "to": "oncall@example.com",
                "from_email": "interestflow@example.com",
                "disable_tls": True,
                "disable_ssl": True,
            },
        }
    )
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink
    controller.stop()
