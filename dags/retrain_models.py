"""
### retrain_models
Trains every candidate recommender as a mapped task (dynamic task mapping over the model
configs in the `candidates` Param), evaluates each on a time-based holdout, registers the
versions, then one gate task decides: the best challenger is promoted to champion only if it
beats the champion's primary metric (nDCG@10) by `margin`, keeps the guard metrics, and passes
a smoke load in a fresh process. The decision and its reason are in the task log and in
`registry.gate_decisions`.

Runs when the feature marts are rebuilt; emits `champion_model`, which schedules publishing.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from interestflow_defaults import CHAMPION_MODEL, DEFAULT_ARGS, FEATURE_MARTS, START, WAREHOUSE_POOL
from ml.defaults import DEFAULT_CANDIDATES


@dag(
    dag_id="retrain_models",
    schedule=[FEATURE_MARTS],
    start_date=START,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["interestflow", "training"],
    default_args=DEFAULT_ARGS,
    params={
        "candidates": Param(DEFAULT_CANDIDATES, type="array", description="Model configs: {model, params}."),
        "holdout_days": Param(7, type="number", minimum=1, description="Time-based holdout window (days)."),
        "margin": Param(0.0, type="number", description="Required nDCG@10 gain over the champion."),
        "min_coverage": Param(0.0, type="number", minimum=0, maximum=1, description="Coverage guard."),
    },
)
def retrain_models():
    @task
    def list_candidates(params=None) -> list[dict]:
        return list(params["candidates"])

    @task(pool=WAREHOUSE_POOL, map_index_template="{{ task.op_kwargs['candidate']['model'] }}")
    def train(candidate: dict, params=None, run_id=None) -> dict:
        from ml.tasks.training import train_candidate

        return train_candidate(
            candidate["model"], candidate.get("params"), run_id=run_id, holdout_days=params["holdout_days"]
        )

    @task(outlets=[CHAMPION_MODEL], pool=WAREHOUSE_POOL)
    def evaluate_and_gate(results: list[dict], params=None, run_id=None) -> dict:
        from ml.tasks.training import evaluate_and_gate

        return evaluate_and_gate(
            list(results), run_id=run_id, margin=params["margin"], min_coverage=params["min_coverage"]
        )

    evaluate_and_gate(train.expand(candidate=list_candidates()))


retrain_models()
