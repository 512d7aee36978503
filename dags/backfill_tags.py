"""
### backfill_tags
Recomputes item tags (`ml.item_tags`) and user interest profiles
(`ml.user_interest_profiles`) for daily partitions with one tagger version (param
`tagger_version`, default: the tagger champion). Partition `D` = the catalogue as of the end of
`D` and behaviour up to the end of `D` (UTC).

* **Manual**: trigger with `start_date` and `end_date` (inclusive) to backfill a range.
* **Scheduled / `airflow backfill create`**: `@daily` with data intervals; each run owns the
  day its data interval starts, e.g.
  `airflow backfill create --dag-id backfill_tags --from-date 2026-10-01 --to-date 2026-10-07`.
  (`catchup` stays off so unpausing does not queue every day since the start date; backfills
  do not need it.)
* **Idempotent**: a partition is replaced in one transaction, never duplicated.
* **Resumable**: completed partitions are recorded in `ml.tag_backfill_ledger` and skipped by
  the next run (`force` recomputes them).
* **Dry run**: reports rows per partition and the tag-distribution shift; writes nothing.
* **Incremental**: only items whose text, labels or vocabulary changed are tagged again (the
  others keep their tags from `ml.item_tag_cache`); `force` also tags every item again.

Rows carry `tagger_version`; `ml.item_tags_current` and `ml.user_interest_profiles_current`
expose one version at a time and switch only after a successful, non-dry run.
"""

from __future__ import annotations

from airflow.sdk import Asset, CronDataIntervalTimetable, Param, dag, task

from interestflow_defaults import DEFAULT_ARGS, START, WAREHOUSE_POOL

INTEREST_PROFILES = Asset(name="interest_profiles", uri="interestflow://warehouse/ml/user_interest_profiles_current")


@dag(
    dag_id="backfill_tags",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["interestflow", "tagging", "backfill"],
    default_args=DEFAULT_ARGS,
    params={
        "start_date": Param(None, type=["null", "string"], format="date", description="First day (inclusive)."),
        "end_date": Param(None, type=["null", "string"], format="date", description="Last day (inclusive)."),
        "tagger_version": Param("", type="string", description="Registered tagger version; empty = champion."),
        "batch_size": Param(256, type="integer", minimum=1, description="Items per inference batch."),
        "dry_run": Param(False, type="boolean", description="Report rows and tag shift; write nothing."),
        "force": Param(
            False, type="boolean", description="Recompute partitions the ledger marks complete; tag every item again."
        ),
        "make_current": Param(True, type="boolean", description="Point the *_current views at this version."),
    },
)
def backfill_tags():
    @task(pool=WAREHOUSE_POOL)
    def plan(params=None, data_interval_start=None, data_interval_end=None, logical_date=None) -> dict:
        from ml.tasks.tagging import plan_tag_backfill

        return plan_tag_backfill(
            params["start_date"],
            params["end_date"],
            params["tagger_version"],
            force=params["force"],
            data_interval_start=data_interval_start,
            data_interval_end=data_interval_end,
            logical_date=logical_date,
        )

    @task(pool=WAREHOUSE_POOL)
    def backfill_partitions(planned: dict, params=None, run_id=None) -> dict:
        from ml.tasks.tagging import backfill_tags

        return backfill_tags(
            planned, batch_size=params["batch_size"], dry_run=params["dry_run"], run_id=run_id, force=params["force"]
        )

    @task(outlets=[INTEREST_PROFILES], pool=WAREHOUSE_POOL)
    def make_current(report: dict, params=None, run_id=None) -> dict:
        from ml.tasks.tagging import switch_current_tags

        return switch_current_tags(report, run_id=run_id, make_current=params["make_current"])

    make_current(backfill_partitions(plan()))


backfill_tags()
