from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def airflow_runtime():
    """Migrated SQLite metadata DB under the session's AIRFLOW_HOME, pool, dbt manifest."""
    from ml.orchestration import local

    return local.prepare()


@pytest.fixture(scope="session")
def pipeline_runs(airflow_runtime, tiny_shop):
    """The four DAGs run for real (dag.test) on the tiny shop, in asset order."""
    from ml.orchestration.local import run_dag

    runs = {}
    runs["ingest_events"] = run_dag("ingest_events", {"paths": [str(tiny_shop)]})
    for dag_id in ("build_features", "retrain_models", "publish_recommendations"):
        runs[dag_id] = run_dag(dag_id)
    return runs
