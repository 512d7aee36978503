"""
### publish_recommendations
Scores every active user with the champion model and publishes the top-k atomically: a new
version table `serving.recommendations__<version>` is written, checked by the pre-publish gate,
then `serving.recommendations_current` is switched to it in one transaction. The last
`keep_versions` versions are kept for rollback (`python -m ml publish rollback --to VERSION`).
Re-running the same DAG run rewrites the same version with identical rows.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from interestflow_defaults import CHAMPION_MODEL, DEFAULT_ARGS, RECOMMENDATIONS, START, WAREHOUSE_POOL


@dag(
    dag_id="publish_recommendations",
    schedule=[CHAMPION_MODEL],
    start_date=START,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["interestflow", "publishing"],
    default_args=DEFAULT_ARGS,
    params={
        "k": Param(10, type="integer", minimum=1, maximum=100, description="Items per user."),
        "keep_versions": Param(3, type="integer", minimum=1, description="Published versions kept."),
        "exclude_event_types": Param(
            ["purchase"], type="array", description="Never recommend items the user did this with."
        ),
    },
)
def publish_recommendations():
    @task(outlets=[RECOMMENDATIONS], pool=WAREHOUSE_POOL)
    def publish(params=None, run_id=None) -> dict:
        from ml.tasks.publishing import publish_recommendations

        return publish_recommendations(
            run_id=run_id,
            k=params["k"],
            keep_versions=params["keep_versions"],
            exclude_event_types=params["exclude_event_types"],
        )

    publish()


publish_recommendations()
