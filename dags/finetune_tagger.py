"""
### finetune_tagger
Trains item taggers on the labelled catalogue (`ml.tag_labels`: optionally loaded first from
the `labels_path` param) and promotes the best through the champion/challenger gate of the
`tagger` family.

* `build_training_set` summarises the labelled items and the stable hash split (held-out
  share `test_share`); tags with fewer than `min_labels` labelled items are left to zero-shot.
* Every config in `candidates` trains as a mapped task (TF-IDF Naive Bayes, TF-IDF logistic
  regression, fine-tuned all-MiniLM-L6-v2), is scored on the held-out items and registered.
* `evaluate_and_gate` re-scores the current champion on the same held-out items and promotes
  the best candidate only if it beats it on macro F1 by `margin` and reloads cleanly. The
  decision is in the log and in `registry.gate_decisions`.

Runs weekly and on demand; emits `champion_tagger`.
"""

from __future__ import annotations

from airflow.sdk import Asset, Param, dag, task

from interestflow_defaults import DEFAULT_ARGS, START, WAREHOUSE_POOL
from ml.tagging.defaults import DEFAULT_TAGGER_CANDIDATES, MIN_LABELS, TEST_SHARE

CHAMPION_TAGGER = Asset(name="champion_tagger", uri="interestflow://registry/tagger/champion")


@dag(
    dag_id="finetune_tagger",
    schedule="@weekly",
    start_date=START,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["interestflow", "tagging", "training"],
    default_args=DEFAULT_ARGS,
    params={
        "labels_path": Param("", type="string", description="Label file (item_id, tag) to load first; empty = none."),
        "label_fraction": Param(
            1.0, type="number", exclusiveMinimum=0, maximum=1, description="Share of the file's items to keep."
        ),
        "candidates": Param(DEFAULT_TAGGER_CANDIDATES, type="array", description="Tagger configs: {model, params}."),
        "test_share": Param(TEST_SHARE, type="number", exclusiveMinimum=0, maximum=0.9, description="Held-out share."),
        "min_labels": Param(MIN_LABELS, type="integer", minimum=1, description="Labels a tag needs to be learned."),
        "margin": Param(0.0, type="number", description="Required macro-F1 gain over the champion."),
    },
)
def finetune_tagger():
    @task(pool=WAREHOUSE_POOL)
    def load_labels(params=None) -> dict:
        from ml.tasks.tagging import load_tag_labels

        return load_tag_labels(params["labels_path"], fraction=params["label_fraction"])

    @task(pool=WAREHOUSE_POOL)
    def build_training_set(loaded: dict, params=None) -> dict:
        from ml.tasks.tagging import build_training_set

        return build_training_set(test_share=params["test_share"], min_labels=params["min_labels"])

    @task
    def list_candidates(summary: dict, params=None) -> list[dict]:
        return list(params["candidates"])

    @task(pool=WAREHOUSE_POOL, map_index_template="{{ task.op_kwargs['candidate']['model'] }}")
    def train(candidate: dict, params=None, run_id=None) -> dict:
        from ml.tasks.tagging import train_tagger

        return train_tagger(
            candidate["model"],
            candidate.get("params"),
            run_id=run_id,
            test_share=params["test_share"],
            min_labels=params["min_labels"],
        )

    @task(outlets=[CHAMPION_TAGGER], pool=WAREHOUSE_POOL)
    def evaluate_and_gate(results: list[dict], params=None, run_id=None) -> dict:
        from ml.tasks.tagging import evaluate_and_gate_tagger

        return evaluate_and_gate_tagger(
            list(results),
            run_id=run_id,
            margin=params["margin"],
            test_share=params["test_share"],
            min_labels=params["min_labels"],
        )

    summary = build_training_set(load_labels())
    evaluate_and_gate(train.expand(candidate=list_candidates(summary)))


finetune_tagger()
