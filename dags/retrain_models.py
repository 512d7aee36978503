"""
### retrain_models
Trains every candidate recommender as a mapped task (dynamic task mapping over the model
configs in the `candidates` Param), evaluates each on a time-based holdout, registers the
versions (params, holdout metrics, training snapshot, git sha, artifact, training time), then
one gate task decides: the best challenger is promoted to champion only if it beats the
champion's primary metric (nDCG@10) by `margin`, keeps the guard metrics (coverage, hit rate
of new users) and passes a smoke load in a fresh process. Otherwise the champion stays. The
decision and its reason are in the gate task's log, its return value, the `champion_model`
asset event and `registry.gate_decisions`.

Models: popularity, item_knn, user_knn, als, bpr, ease, content, two_tower, context, blend
(`ml.defaults.ALL_CANDIDATES` has one config for each). The default `candidates` are the
production set (`ml.defaults.DEFAULT_CANDIDATES`: EASE on the 6,000 most popular items and the
Keras two-tower model), chosen on the default and large shops (docs/benchmarks.md); pass a
cheaper list in the run conf for quick runs.

Runs when the feature marts are rebuilt; emits `champion_model`, which schedules publishing.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from interestflow_defaults import CHAMPION_MODEL, DEFAULT_ARGS, FEATURE_MARTS, START, WAREHOUSE_POOL
from ml.defaults import (
    DEFAULT_CANDIDATES,
    GATE_MARGIN,
    GATE_MAX_COVERAGE_DROP,
    GATE_MIN_COVERAGE,
    GATE_MIN_NEW_USER_HIT_RATE,
    MODEL_NAMES,
)


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
        "candidates": Param(
            DEFAULT_CANDIDATES,
            type="array",
            items={"type": "object", "required": ["model"], "properties": {"model": {"enum": MODEL_NAMES}}},
            description="Model configs {model, params}; model is one of: " + ", ".join(MODEL_NAMES) + ".",
        ),
        "holdout_days": Param(7, type="number", minimum=1, description="Time-based holdout window (days)."),
        "margin": Param(GATE_MARGIN, type="number", minimum=0, description="Required nDCG@10 gain over the champion."),
        "min_coverage": Param(GATE_MIN_COVERAGE, type="number", minimum=0, maximum=1, description="Coverage floor."),
        "max_coverage_drop": Param(
            GATE_MAX_COVERAGE_DROP,
            type="number",
            minimum=0,
            maximum=1,
            description="Allowed coverage drop vs champion.",
        ),
        "min_new_user_hit_rate": Param(
            GATE_MIN_NEW_USER_HIT_RATE, type="number", minimum=0, maximum=1, description="Hit-rate floor, new users."
        ),
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
    def evaluate_and_gate(results: list[dict], params=None, run_id=None, outlet_events=None) -> dict:
        from ml.tasks.training import evaluate_and_gate

        decision = evaluate_and_gate(
            list(results),
            run_id=run_id,
            margin=params["margin"],
            min_coverage=params["min_coverage"],
            max_coverage_drop=params["max_coverage_drop"],
            min_new_user_hit_rate=params["min_new_user_hit_rate"],
        )
        outlet_events[CHAMPION_MODEL].extra = decision
        return decision

    evaluate_and_gate(train.expand(candidate=list_candidates()))


retrain_models()
