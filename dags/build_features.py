"""
### build_features
Builds the dbt feature layer (`dbt/`: sources -> staging -> intermediate -> marts) through
astronomer-cosmos, so every model and its tests are visible tasks. Runs when new raw events
land (`raw_events` asset). All dbt tasks share the `warehouse` pool (DuckDB has one writer).

Ends with a data-quality check of the marts and emits `feature_marts`, which schedules
`retrain_models`.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from interestflow_defaults import DEFAULT_ARGS, FEATURE_MARTS, RAW_EVENTS, START, WAREHOUSE_POOL
from ml.orchestration.cosmos import dbt_task_group


@dag(
    dag_id="build_features",
    schedule=[RAW_EVENTS],
    start_date=START,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["interestflow", "features"],
    default_args=DEFAULT_ARGS,
)
def build_features():
    dbt = dbt_task_group(group_id="dbt", pool=WAREHOUSE_POOL)

    @task(outlets=[FEATURE_MARTS], pool=WAREHOUSE_POOL)
    def check_marts() -> dict:
        from ml.tasks.features import check_marts

        return check_marts()

    dbt >> check_marts()


build_features()
