"""
### watch_serving
Every hour, checks how old the served recommendations are. A blocked batch (a failed gate, a
crashed retrain) never starts a `publish_recommendations` run, so nothing else fails when the
shop silently keeps serving old slates: this DAG's `check_serving_age` task fails when
`serving.recommendations_current` was published longer ago than `max_age_hours` (empty: the
`INTERESTFLOW_SERVING_MAX_AGE_HOURS` setting, default 36) or when nothing is published, with
the version, its publish time and the data-quality gates that failed since. The failure goes
through the DAGs' notifier: one e-mail per failed check through the `interestflow_alerts` SMTP
Connection (`ml/orchestration/alerts.py`; off when that connection is not defined).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, task

from interestflow_defaults import DEFAULT_ARGS, START, WAREHOUSE_POOL


@dag(
    dag_id="watch_serving",
    schedule=timedelta(hours=1),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["interestflow", "publishing", "quality"],
    default_args=DEFAULT_ARGS,
    params={
        "max_age_hours": Param(
            None,
            type=["null", "number"],
            exclusiveMinimum=0,
            description="Allowed age of serving.recommendations_current in hours; "
            "empty = INTERESTFLOW_SERVING_MAX_AGE_HOURS (default 36).",
        ),
    },
)
def watch_serving():
    @task(pool=WAREHOUSE_POOL)
    def check_serving_age(params=None) -> dict:
        from ml.tasks.publishing import check_serving_age

        return check_serving_age(max_age_hours=params["max_age_hours"])

    check_serving_age()


watch_serving()
