"""The publish -> feedback -> dbt -> OPE -> gate loop on PostgreSQL (the scale-out warehouse)."""

from __future__ import annotations

import os
import uuid

import pytest

from ml.explore import columns as C
from tests.conftest import require_service

pytestmark = [pytest.mark.integration, pytest.mark.dbt, pytest.mark.slow]

PG = os.environ.get("INTERESTFLOW_TEST_PG", "postgresql://postgres@127.0.0.1:5432")


@pytest.fixture()
def pg_loop(tmp_path, monkeypatch, run_policy_loop):
    import psycopg

    from ml.warehouse import Warehouse

    try:
        admin = psycopg.connect(f"{PG}/postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        admin = None
    require_service(admin is not None, f"PostgreSQL at {PG}")
    name = f"interestflow_explore_{uuid.uuid4().hex[:8]}"
    admin.execute(f"create database {name}")
    url = f"{PG}/{name}"
    monkeypatch.setenv("INTERESTFLOW_WAREHOUSE", url)
    monkeypatch.setenv("INTERESTFLOW_ARTIFACTS", str(tmp_path / "artifacts"))
    try:
        yield run_policy_loop(Warehouse(url), tmp_path)
    finally:
        admin.execute(f"drop database if exists {name} with (force)")
        admin.close()


def test_loop_runs_on_postgres(pg_loop):
    from ml.tasks.policies import evaluate_policies, gate_policies

    wh = pg_loop["wh"]
    mart = wh.query(f"select * from {C.BANDIT_FEEDBACK} where has_propensity")
    assert len(mart) == len(pg_loop["recs"])
    logged = wh.query(f"select recommendation_id, position, propensity from {C.LOGGED_SLATES}")
    joined = mart.merge(logged, on=[C.RECOMMENDATION_ID, C.POSITION], suffixes=("", "_logged"))
    assert (joined[C.PROPENSITY] == joined["propensity_logged"]).all()
    ev = evaluate_policies(
        run_id="pg-eval", candidates=[{"policy": "thompson", "params": {}}], n_bootstrap=50, propensity_draws=32
    )
    assert ev["evaluated"] and ev["n_rounds"] == len(mart)
    est = wh.query(f"select * from {C.POLICY_ESTIMATES} where run_id = ?", ["pg-eval"])
    assert set(est["policy"]) == {"greedy", "thompson"}
    assert "promoted" in gate_policies(ev, run_id="pg-eval")
