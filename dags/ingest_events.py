"""
### ingest_events
Loads landing batches (CSV, JSON Lines, Parquet) into the warehouse `raw` schema.

* Every row is accepted or quarantined with a reason code (`raw.quarantine`); the task log
  prints one JSON accounting line per file (`rows == accepted + quarantined`).
* Each batch passes the Great Expectations landing gate (`ml/quality/suites/landing_*.yml`:
  keys, ranges, null rates, drift against the previous accepted batch) before it is accepted.
* A file is identified by the hash of its bytes: re-running adds nothing.
* A batch with more than the allowed share of bad rows, or failing its gate, is **blocked**
  and the task fails without retrying, so nothing downstream (features, training, publishing)
  runs. Gate results: `quality.gate_runs`, Data Docs under `$INTERESTFLOW_HOME/data_docs/`.

Emits the `raw_events` asset, which schedules `build_features`. A run that accepts no new row
(nothing landed since the last run, or only files already ingested) is skipped and emits nothing.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from interestflow_defaults import DEFAULT_ARGS, RAW_EVENTS, START, WAREHOUSE_POOL


@dag(
    dag_id="ingest_events",
    schedule="@hourly",
    start_date=START,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["interestflow", "ingest", "quality"],
    default_args=DEFAULT_ARGS,
    params={
        "paths": Param([], type="array", description="Files or folders to ingest; empty = the landing folder."),
        "quarantine_threshold": Param(
            0.05, type="number", minimum=0, maximum=1, description="Block the batch above this share of bad rows."
        ),
    },
)
def ingest_events():
    @task(outlets=[RAW_EVENTS], pool=WAREHOUSE_POOL)
    def load_landing_batches(params=None) -> list[dict]:
        from ml.tasks.ingest import ingest_landing

        return ingest_landing(
            params["paths"] or None, threshold=params["quarantine_threshold"], skip_when_nothing_new=True
        )

    load_landing_batches()


ingest_events()
