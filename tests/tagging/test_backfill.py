"""Backfills: dry run, idempotent partitions, atomic writes, kill-and-resume, one current version."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from datetime import date

import pandas as pd
import pytest

from ml import config
from ml.tagging import store
from ml.tagging.backfill import TagBackfill, partition_for_run, partitions_between, plan_backfill
from ml.tagging.profiles import REASONS, interest_recall
from ml.tasks.tagging import evaluate_and_gate_tagger, train_tagger

pytestmark = [pytest.mark.slow]

DAYS = ("2026-10-25", "2026-10-27")


def _train(model: str, params: dict | None = None) -> str:
    """A registered tagger without zero-shot tags (the zero-shot path has its own tests)."""
    res = train_tagger(
        model, params or {}, run_id=f"test-{model}", test_share=0.3, min_labels=2, zero_shot_threshold=None
    )
    evaluate_and_gate_tagger([res], run_id=f"test-{model}", test_share=0.3, min_labels=2)
    return res["version_id"]


@pytest.fixture()
def tagged(shop_warehouse, tiny_shop):
    """The tiny shop with 70 % of its items labelled and a Naive Bayes champion tagger."""
    from ml.tagging.data import import_labels

    import_labels(tiny_shop / "_ground_truth" / "item_tags.parquet", shop_warehouse, fraction=0.7)
    return shop_warehouse, _train("naive_bayes")


def _rows(wh, version):
    it = wh.query(
        "select * from ml.item_tags where tagger_version = ? order by partition_date, item_id, tag", [version]
    )
    pr = wh.query(
        "select * from ml.user_interest_profiles where tagger_version = ? order by as_of, user_id, tag", [version]
    )
    return it, pr


def _partition(wh, version, day):
    """One partition's item tag rows (item_id, tag, score, source), in order."""
    return wh.query(
        "select item_id, tag, score, source from ml.item_tags where tagger_version = ? and partition_date = ? "
        "order by item_id, tag",
        [version, day],
    )


def test_partition_of_a_run_is_its_data_interval_day():
    s, e = pd.Timestamp("2026-10-01", tz="UTC"), pd.Timestamp("2026-10-02", tz="UTC")
    assert partition_for_run(s, e, s) == date(2026, 10, 1)
    assert partition_for_run(e, e, e) == date(2026, 10, 1)  # point-in-time runs own the last full day
    assert partitions_between("2026-10-30", "2026-11-01") == [date(2026, 10, 30), date(2026, 10, 31), date(2026, 11, 1)]
    with pytest.raises(ValueError, match="before start"):
        partitions_between("2026-10-02", "2026-10-01")


def test_dry_run_reports_rows_and_shift_and_writes_nothing(tagged):
    wh, version = tagged
    plan = plan_backfill(wh, *DAYS)
    assert plan.tagger_version == version and plan.todo == plan.partitions
    report = TagBackfill(wh, version, dry_run=True, batch_size=16).run(plan.todo)
    assert [p["partition"] for p in report["partitions"]] == plan.partitions
    assert all(p["item_tag_rows"] > 0 and p["profile_rows"] > 0 and not p["written"] for p in report["partitions"])
    assert all(p["tag_shift"]["total_variation"] is None for p in report["partitions"])  # nothing stored yet
    with wh.connect(read_only=True) as con:
        assert (
            not wh.table_exists(con, "ml", "item_tags")
            or wh.query("select count(*) as n from ml.item_tags", None, con)["n"].iloc[0] == 0
        )
    assert store.completed_partitions(wh, version) == set()
    # after a real run, a dry run compares against what is stored: same tagger, no shift
    TagBackfill(wh, version).run(plan.todo)
    again = TagBackfill(wh, version, dry_run=True, force=True).run(plan.todo)
    assert all(p["tag_shift"]["total_variation"] == 0.0 for p in again["partitions"])
    assert all(p["stored_item_tag_rows"] == p["item_tag_rows"] for p in again["partitions"])


def test_backfill_writes_consistent_partitions_and_reruns_are_idempotent(tagged):
    wh, version = tagged
    plan = plan_backfill(wh, *DAYS)
    first = TagBackfill(wh, version, run_id="r1").run(plan.todo)
    it1, pr1 = _rows(wh, version)
    ledger = store.ledger(wh, version)
    assert len(ledger) == 3
    for d, n_it, n_pr in zip(ledger["partition_date"], ledger["item_tag_rows"], ledger["profile_rows"], strict=True):
        assert (it1["partition_date"] == d).sum() == n_it and (pr1["as_of"] == d).sum() == n_pr
    assert not it1.duplicated(["partition_date", "item_id", "tag"]).any()
    assert not pr1.duplicated(["as_of", "user_id", "tag"]).any()
    assert set(it1["source"]) <= {"label", "model", "zero_shot"} and {"label", "model"} <= set(it1["source"])
    assert set(pr1["status"]) == {"known", "candidate"}
    assert set(pr1["candidate_reason"].dropna()) <= set(REASONS)
    assert pr1.loc[pr1["status"] == "known", "candidate_reason"].isna().all()
    # behaviour accumulates: a later partition profiles at least the users of an earlier one
    users = pr1.groupby("as_of")["user_id"].apply(set).tolist()
    assert all(a <= b for a, b in itertools.pairwise(users))
    # re-running skips completed partitions; forcing recomputes them to identical rows
    assert TagBackfill(wh, version).run(plan.partitions)["skipped"] == plan.partitions
    forced = TagBackfill(wh, version, force=True, run_id="r2").run(plan.partitions)
    assert len(forced["partitions"]) == len(first["partitions"])
    it2, pr2 = _rows(wh, version)
    pd.testing.assert_frame_equal(it1, it2)
    pd.testing.assert_frame_equal(pr1, pr2)


def test_a_backfill_tags_only_items_whose_text_or_labels_changed(tagged, monkeypatch):
    wh, version = tagged
    first = TagBackfill(wh, version).run([DAYS[0]])
    n_items = first["items_tagged"]
    assert n_items > 0 and first["items_reused"] == 0
    cache = store.cached_tags(wh, version)
    assert cache["item_id"].nunique() == n_items and not cache.duplicated(["item_id", "tag"]).any()
    # nothing changed: every item's tags come from the cache, and the tagger is never loaded
    original_load = TagBackfill.load_artifact
    monkeypatch.setattr(TagBackfill, "load_artifact", lambda self: pytest.fail("the tagger was loaded"))
    second = TagBackfill(wh, version).run([DAYS[1]])
    assert (second["items_tagged"], second["items_reused"]) == (0, n_items)
    # a merchandiser edits one item's text and labels another: exactly those two are tagged again
    monkeypatch.setattr(TagBackfill, "load_artifact", original_load)
    edited, relabelled = wh.query(
        "select item_id from staging.stg_shop__items where created_at < '2026-10-26' order by item_id limit 2"
    )["item_id"]
    had = set(wh.query("select tag from ml.tag_labels where item_id = ?", [relabelled])["tag"])
    label = next(t for t in ("cat:men_watches", "cat:men_suits") if t not in had)
    with wh.connect() as con:
        wh.execute(con, "update raw.items set title = 'Waterproof hiking boots' where item_id = ?", [edited])
        wh.execute(con, "insert into ml.tag_labels values (?, ?, 'edit.csv', now())", [relabelled, label])
    third = TagBackfill(wh, version).run(["2026-10-26"])
    assert (third["items_tagged"], third["items_reused"]) == (2, n_items - 2)
    # and the partition equals one where every item was tagged from scratch
    incremental = _partition(wh, version, "2026-10-26")
    TagBackfill(wh, version, force=True).run(["2026-10-26"])
    scratch = _partition(wh, version, "2026-10-26")
    assert len(scratch) > n_items
    pd.testing.assert_frame_equal(incremental, scratch)
    assert label in set(scratch.loc[scratch["item_id"] == relabelled, "tag"])
    # a dry run caches nothing; another tagger version does not reuse this version's tags
    v2 = _train("logistic_regression", {"C": 5.0})
    assert TagBackfill(wh, v2, dry_run=True).run([DAYS[0]])["items_tagged"] == n_items
    assert store.cached_tags(wh, v2).empty


def test_a_failing_partition_write_leaves_nothing_behind(tagged, monkeypatch):
    wh, version = tagged
    TagBackfill(wh, version).run([DAYS[0]])
    before = _rows(wh, version)
    original = type(wh).append_df

    def broken(self, con, table, df):
        if table == store.PROFILES:
            raise RuntimeError("disk full")
        return original(self, con, table, df)

    monkeypatch.setattr(type(wh), "append_df", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        TagBackfill(wh, version, force=True).run([DAYS[0], "2026-10-26"])
    monkeypatch.setattr(type(wh), "append_df", original)
    after = _rows(wh, version)
    pd.testing.assert_frame_equal(before[0], after[0])
    pd.testing.assert_frame_equal(before[1], after[1])
    assert store.completed_partitions(wh, version) == {date(2026, 10, 25)}


def test_a_backfill_killed_midway_resumes_where_it_stopped(tagged):
    wh, version = tagged
    env = {**os.environ, "INTERESTFLOW_WAREHOUSE": wh.url, "PYTHONPATH": str(config.PROJECT_ROOT)}
    cmd = [sys.executable, "-m", "ml", "tags", "backfill", "--start", "2026-10-20", "--end", "2026-10-27"]
    proc = subprocess.Popen([*cmd, "--pause-seconds", "3"], stdout=subprocess.PIPE, text=True, env=env)
    done_before_kill = []
    assert proc.stdout is not None
    for line in proc.stdout:
        msg = json.loads(line)
        if "partition" in msg:
            done_before_kill.append(msg["partition"])
        if len(done_before_kill) == 2:
            proc.send_signal(signal.SIGKILL)  # mid-run: six partitions still to go
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    completed = sorted(d.isoformat() for d in store.completed_partitions(wh, version))
    assert completed[:2] == done_before_kill and len(completed) < 8
    it, pr = _rows(wh, version)
    assert sorted({d.isoformat() for d in pd.to_datetime(it["partition_date"]).dt.date}) == completed
    assert sorted({d.isoformat() for d in pd.to_datetime(pr["as_of"]).dt.date}) == completed
    # resume: the completed partitions are skipped, the rest is computed
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=True)
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    assert lines[0]["plan"]["completed"] == completed
    resumed = [m["partition"] for m in lines if "partition" in m]
    assert sorted(resumed + completed) == [d.isoformat() for d in partitions_between("2026-10-20", "2026-10-27")]
    # the result equals an uninterrupted run: recompute everything and compare
    it1, pr1 = _rows(wh, version)
    TagBackfill(wh, version, force=True).run(partitions_between("2026-10-20", "2026-10-27"))
    it2, pr2 = _rows(wh, version)
    pd.testing.assert_frame_equal(it1, it2)
    pd.testing.assert_frame_equal(pr1, pr2)
    assert lines[-1]["done"]["current"]["tagger_version"] == version


def test_current_views_expose_exactly_one_tagger_version(tagged):
    wh, v1 = tagged
    TagBackfill(wh, v1).run(list(DAYS))
    store.switch_current(wh, v1, "t")
    v2 = _train("logistic_regression", {"C": 5.0})
    TagBackfill(wh, v2).run(list(DAYS))  # written next to v1, not yet current
    cur = wh.query("select distinct tagger_version, partition_date from ml.item_tags_current")
    assert cur["tagger_version"].tolist() == [v1] and len(cur) == 1
    prof = wh.query("select distinct tagger_version, as_of from ml.user_interest_profiles_current")
    assert prof["tagger_version"].tolist() == [v1]
    assert pd.Timestamp(prof["as_of"].iloc[0]).date() == date.fromisoformat(DAYS[1])
    store.switch_current(wh, v2, "t")
    assert wh.query("select distinct tagger_version from ml.user_interest_profiles_current")[
        "tagger_version"
    ].tolist() == [v2]
    assert store.current_version(wh) == v2
    both = wh.query("select distinct tagger_version from ml.item_tags")["tagger_version"]
    assert set(both) == {v1, v2}


def test_profiles_recover_true_interests_far_better_than_chance(tagged, tiny_shop):
    wh, version = tagged
    TagBackfill(wh, version).run(["2026-10-31"])
    store.switch_current(wh, version, "t")
    profiles = wh.query("select * from ml.user_interest_profiles_current")
    truth = pd.read_parquet(tiny_shop / "_ground_truth" / "user_interests.parquet")
    got = interest_recall(profiles, truth)
    assert got["recall_known_or_candidate"] >= got["recall_known"] > 0
    # chance: the same number of tags per user drawn from the tags profiles use
    pool = profiles["tag"].unique()
    rng = pd.Series(range(len(profiles))).sample(frac=1.0, random_state=0).to_numpy() % len(pool)
    shuffled = profiles.assign(tag=pool[rng])
    chance = interest_recall(shuffled.drop_duplicates(["user_id", "tag"]), truth)
    assert got["recall_known_or_candidate"] > 2 * chance["recall_known_or_candidate"]
