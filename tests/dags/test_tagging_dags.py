"""The tagging DAGs for real on the tiny shop: fine-tune and gate taggers, then backfill tags
and profiles (dry run, real, re-run) the way a manual trigger and `airflow backfill create` do."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

pytestmark = [pytest.mark.dags, pytest.mark.slow]

TINY_CANDIDATES = [
    {"model": "naive_bayes", "params": {}},
    {"model": "logistic_regression", "params": {}},
    {"model": "transformer", "params": {"epochs": 1, "max_length": 24, "batch_size": 16, "threads": 1}},
]
RANGE = {"start_date": "2026-10-29", "end_date": "2026-10-31"}


@pytest.fixture(scope="module")
def tagger_run(pipeline_runs, tiny_shop):
    from ml.orchestration.local import run_dag

    conf = {
        "labels_path": str(tiny_shop / "_ground_truth" / "item_tags.parquet"),
        "label_fraction": 0.7,
        "candidates": TINY_CANDIDATES,
        "test_share": 0.3,
        "min_labels": 2,
    }
    return run_dag("finetune_tagger", conf)


def _state(run, task_id: str) -> str:
    return next(str(ti.state) for ti in run.get_task_instances() if ti.task_id == task_id)


def test_tagging_dags_follow_the_house_rules(airflow_runtime):
    from airflow.dag_processing.dagbag import DagBag

    from ml import config

    bag = DagBag(dag_folder=str(config.DAGS_DIR))
    for dag_id in ("finetune_tagger", "backfill_tags"):
        dag = bag.get_dag(dag_id)
        assert dag is not None and "tagging" in dag.tags, dag_id
        writers = [t for t in dag.tasks if t.task_id != "list_candidates"]
        assert all(t.pool == "warehouse" for t in writers), dag_id
    from airflow.serialization.encoders import coerce_to_core_timetable

    backfill = bag.get_dag("backfill_tags")
    assert coerce_to_core_timetable(backfill.timetable).periodic and "backfill" in backfill.tags
    assert {"start_date", "end_date", "tagger_version", "batch_size", "dry_run"} <= set(backfill.params)


def test_finetune_tagger_trains_registers_and_gates_every_candidate(tagger_run):
    from ml.registry import Registry

    reg = Registry()
    versions = reg.versions("tagger")
    mine = versions[versions["run_id"] == tagger_run.run_id]
    assert set(mine["model_name"]) == {"naive_bayes", "logistic_regression", "transformer"}
    metrics = {r.model_name: pd.Series(json.loads(r.metrics)) for r in mine.itertuples()}
    assert all({"macro_f1", "micro_f1", "precision@3", "items_per_second"} <= set(m.index) for m in metrics.values())
    decisions = reg.decisions("tagger")
    last = decisions[decisions["run_id"] == tagger_run.run_id].iloc[-1]
    best = max(metrics, key=lambda n: metrics[n]["macro_f1"])
    assert last["challenger_version"] == mine.loc[mine["model_name"] == best, "version_id"].iloc[0]
    champ = reg.champion("tagger")
    assert champ is not None and bool(last["promoted"]) == (champ["version_id"] == last["challenger_version"])
    labels = reg.wh.query("select count(distinct item_id) as n from ml.tag_labels")["n"].iloc[0]
    assert 0 < labels < 120  # 70 % of the tiny catalogue was labelled


def test_backfill_dry_run_then_run_then_rerun_is_idempotent(tagger_run):
    from ml.orchestration.local import run_dag
    from ml.registry import Registry
    from ml.tagging import store

    wh = Registry().wh
    version = Registry().champion("tagger")["version_id"]
    dry = run_dag("backfill_tags", {**RANGE, "dry_run": True, "batch_size": 32})
    assert "skipped" in _state(dry, "make_current").lower()
    assert store.completed_partitions(wh, version) == set()
    first = run_dag("backfill_tags", {**RANGE, "batch_size": 32})
    assert "success" in _state(first, "make_current").lower()
    days = {date(2026, 10, 29), date(2026, 10, 30), date(2026, 10, 31)}
    assert store.completed_partitions(wh, version) == days
    assert store.current_version(wh) == version
    q = "select * from ml.item_tags where tagger_version = ? order by partition_date, item_id, tag"
    qp = "select * from ml.user_interest_profiles where tagger_version = ? order by as_of, user_id, tag"
    tags_1, prof_1 = wh.query(q, [version]), wh.query(qp, [version])
    current = wh.query("select distinct tagger_version, as_of from ml.user_interest_profiles_current")
    assert current["tagger_version"].tolist() == [version]
    assert pd.Timestamp(current["as_of"].iloc[0]).date() == date(2026, 10, 31)
    run_dag("backfill_tags", {**RANGE, "batch_size": 7})  # re-run: every partition is skipped
    pd.testing.assert_frame_equal(tags_1, wh.query(q, [version]))
    pd.testing.assert_frame_equal(prof_1, wh.query(qp, [version]))
    run_dag("backfill_tags", {**RANGE, "force": True})  # forced: recomputed, same rows
    pd.testing.assert_frame_equal(tags_1, wh.query(q, [version]))
    pd.testing.assert_frame_equal(prof_1, wh.query(qp, [version]))


def test_backfill_runs_own_their_data_interval_day(tagger_run):
    """`airflow backfill create` makes one run per day with data interval [day, day + 1): the
    run writes exactly that partition; a run without date params uses its own interval."""
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import DataInterval, TimeRestriction

    from ml.orchestration.local import load_dag
    from ml.registry import Registry
    from ml.tagging import store
    from ml.tagging.backfill import partition_for_run

    dag = load_dag("backfill_tags")
    tt = coerce_to_core_timetable(dag.timetable)
    day = datetime(2026, 10, 20, tzinfo=UTC)
    info = tt.next_dagrun_info(
        last_automated_data_interval=DataInterval(day - timedelta(days=1), day),
        restriction=TimeRestriction(earliest=None, latest=None, catchup=True),
    )
    assert info.logical_date == day and info.data_interval.end - info.data_interval.start == timedelta(days=1)
    assert partition_for_run(info.data_interval.start, info.data_interval.end, info.logical_date) == day.date()
    # a run with no date params (scheduled or triggered) owns the day of its data interval
    run = dag.test(logical_date=day, run_conf={})
    assert "success" in str(run.state)
    interval = tt.infer_manual_data_interval(run_after=day)
    wh = Registry().wh
    version = Registry().champion("tagger")["version_id"]
    got = store.ledger(wh, version)
    got = got[got["run_id"] == run.run_id]
    assert [pd.Timestamp(d).date() for d in got["partition_date"]] == [interval.start.date()]
