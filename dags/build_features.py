"""
### build_features
Builds the dbt feature layer (`dbt/`: sources -> staging -> intermediate -> marts) through
astronomer-cosmos, so every model with its data tests is a visible task (unit tests run in CI),
with the data-quality gates between the layers:

`dbt_staging` (seeds, staging models) -> `gate_staged_events` -> `score_reviews` (the sentiment
of new reviews, `ml.review_sentiment`, which the item marts aggregate) and `load_assistant_log`
(the slates the shopping assistant showed -> `ml.logged_slates`, for the feedback mart) -> `dbt_features`
(intermediate models, marts) -> `gate_marts` -> behaviour patterns (`segment_users`,
`mine_category_rules`, `fit_category_transitions`) -> `features_ready`, which emits
`feature_marts` (schedules `retrain_models`). After it, `embed_items` keeps the shopping
assistant's item embeddings (`ml.item_embeddings`) current for new or changed items: a leaf that
waits for the marts, so its language model never holds the warehouse pool ahead of them, and its
failure fails the run but never holds back `feature_marts`.

A failed gate fails its task (no retries) with the failing expectations, columns, counts and
example values, writes Data Docs under `$INTERESTFLOW_HOME/data_docs/` and records a row in
`quality.gate_runs`; everything downstream is skipped, so nothing is retrained or published and
the last published recommendations stay served. Runs when new raw events land (`raw_events`).
All tasks share the `warehouse` pool (DuckDB has one writer).
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
    tags=["interestflow", "features", "quality"],
    default_args=DEFAULT_ARGS,
)
def build_features():
    staging = dbt_task_group(group_id="dbt_staging", pool=WAREHOUSE_POOL, select=["tag:staging"])
    features = dbt_task_group(group_id="dbt_features", pool=WAREHOUSE_POOL, select=["tag:features"])

    @task(pool=WAREHOUSE_POOL)
    def gate_staged_events(run_id=None) -> dict:
        from ml.tasks.features import gate_staged_events

        return gate_staged_events(run_id=run_id)

    @task(pool=WAREHOUSE_POOL)
    def score_reviews(run_id=None) -> dict:
        from ml.tasks.features import score_reviews

        return score_reviews(run_id=run_id)

    @task(pool=WAREHOUSE_POOL)
    def load_assistant_log(run_id=None) -> dict:
        from ml.tasks.features import load_assistant_log

        return load_assistant_log(run_id=run_id)

    @task(pool=WAREHOUSE_POOL)
    def embed_items(run_id=None) -> dict:
        from ml.tasks.features import embed_items

        return embed_items(run_id=run_id)

    @task(pool=WAREHOUSE_POOL)
    def gate_marts(run_id=None) -> dict:
        from ml.tasks.features import gate_marts

        return gate_marts(run_id=run_id)

    @task(pool=WAREHOUSE_POOL)
    def segment_users(run_id=None) -> dict:
        from ml.tasks.features import segment_users

        return segment_users(run_id=run_id)

    @task(pool=WAREHOUSE_POOL)
    def mine_category_rules(run_id=None) -> dict:
        from ml.tasks.features import mine_category_rules

        return mine_category_rules(run_id=run_id)

    @task(pool=WAREHOUSE_POOL)
    def fit_category_transitions(run_id=None) -> dict:
        from ml.tasks.features import fit_category_transitions

        return fit_category_transitions(run_id=run_id)

    @task(outlets=[FEATURE_MARTS], pool=WAREHOUSE_POOL)
    def features_ready() -> dict:
        from ml.tasks.features import check_marts

        return check_marts()

    patterns = [segment_users(), mine_category_rules(), fit_category_transitions()]
    gated = gate_staged_events()
    staging >> gated >> [score_reviews(), load_assistant_log()] >> features
    features >> gate_marts() >> patterns >> features_ready() >> embed_items()


build_features()
