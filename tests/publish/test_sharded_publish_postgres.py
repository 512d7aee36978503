"""Publishing in shards on PostgreSQL: each shard COPYs its part straight into the version's
staged tables (tagged with its shard number) in one transaction, and the switch only drops that
column, indexes, renames and points the view, moving the staged slate log in the same commit.
A retried shard replaces its rows, a shard killed mid-COPY leaves nothing, and staged tables of
abandoned runs are swept."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.dbt, pytest.mark.slow]

K = 10
SERVE = {"policy": "slot_allocator", "exploration_budget": {"default": 0.3}, "propensity_draws": 32}


@pytest.fixture(scope="module")
def pg_ready(pg_server, tiny_shop, tmp_path_factory):
    """One PostgreSQL warehouse for the module: the tiny shop ingested, its marts built and a
    champion trained (each test publishes its own run ids)."""
    from ml.features.dbt import build
    from ml.ingest.landing import ingest_paths
    from ml.orchestration.scaleout import create_database, database_url, drop_database
    from ml.tasks.training import evaluate_and_gate, train_candidate
    from ml.warehouse import Warehouse

    name = f"ift_test_{uuid.uuid4().hex[:10]}"
    create_database(pg_server, name)
    url = database_url(pg_server, name)
    scratch = tmp_path_factory.mktemp("pg_shards")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INTERESTFLOW_WAREHOUSE", url)
        mp.setenv("INTERESTFLOW_ARTIFACTS", str(scratch / "artifacts"))
        wh = Warehouse(url)
        ingest_paths([tiny_shop], wh, gate=False)
        assert build(wh, target_path=scratch / "target").returncode == 0
        cand = train_candidate("item_knn", {"neighbours": 50, "shrinkage": 10.0}, run_id="train-1")
        evaluate_and_gate([cand], run_id="train-1")
        yield wh
    drop_database(pg_server, name)


def _staged(wh, run_id: str) -> str:
    from ml.publish.recommendations import NAME
    from ml.publish.tables import staged_table

    return staged_table(NAME, run_id)


def _exists(wh, qualified: str) -> bool:
    return bool(wh.query("select to_regclass(?) is not null as present", [qualified])["present"].iloc[0])


def test_shards_copy_into_the_version_table_and_the_switch_only_flips_it(pg_ready):
    from ml.explore import columns as C
    from ml.explore.store import read_known_users
    from ml.publish.shards import shard_of
    from ml.tasks.publishing import plan_publish, score_publish_shard, switch_version

    wh = pg_ready
    shards = plan_publish(run_id="pg-split", k=K, shards=3, **SERVE)
    for s in shards:
        out = score_publish_shard(s["plan"], s["shard"])
        assert "_shard = " in out["part"]
    staged = _staged(wh, "pg-split")
    rows = wh.query(f"select _shard, user_id from {staged}")
    # each shard's rows are its own users, and no user is in two shards
    assert (shard_of(rows["user_id"].to_numpy(), 3) == rows["_shard"].to_numpy()).all()
    known = set(read_known_users(wh))
    assert rows["user_id"].nunique() == len(known) and len(rows) == len(known) * K
    # nothing is served from the staged table before the switch
    assert not _exists(wh, "serving.recommendations_current") or "pg-split" not in set(
        wh.query("select distinct run_id from serving.recommendations_current")["run_id"]
    )
    out = switch_version(shards[0]["plan"])
    recs = wh.query("select * from serving.recommendations_current")
    assert "_shard" not in recs.columns and len(recs) == len(known) * K == out["rows"]
    assert out["users"] == len(known) and not recs.duplicated(["user_id", "rank"]).any()
    assert recs.groupby("user_id")["item_id"].nunique().eq(K).all()
    indexes = wh.query("select indexdef from pg_indexes where tablename = ?", [out["table"].split(".")[1]])
    assert indexes["indexdef"].str.contains("(user_id)", regex=False).any()
    logged = wh.query(f"select * from {C.LOGGED_SLATES} where run_id = 'pg-split'")
    assert len(logged) == len(recs) and "_shard" not in logged.columns
    assert not logged.duplicated(["user_id", C.POSITION]).any()
    ctx = wh.query(f"select user_id from {C.SLATE_CONTEXTS} where run_id = 'pg-split'")
    assert sorted(ctx["user_id"]) == sorted(known)
    # the staged tables and the part records went with the switch's commit
    for suffix in ("", "_log", "_contexts"):
        assert not _exists(wh, staged + suffix)
    assert wh.query("select count(*) as n from serving.publish_parts")["n"].iloc[0] == 0
    # one gate run per shard
    gates = wh.query("select run_id, passed from quality.gate_runs where gate = 'prepublish'")
    mine = gates[gates["run_id"].str.startswith("pg-split.shard-")]
    assert len(mine) == 3 and mine["passed"].all()


def test_a_retried_shard_replaces_its_rows(pg_ready):
    from ml.tasks.publishing import plan_publish, score_publish_shard, switch_version

    wh = pg_ready
    shards = plan_publish(run_id="pg-retry", k=K, shards=2, **SERVE)
    for s in shards:
        score_publish_shard(s["plan"], s["shard"])
    staged = _staged(wh, "pg-retry")
    first = wh.query(f"select * from {staged} where _shard = 1 order by user_id, rank")
    score_publish_shard(shards[1]["plan"], 1)  # the retry of shard 1
    again = wh.query(f"select * from {staged} where _shard = 1 order by user_id, rank")
    pd.testing.assert_frame_equal(first, again)  # seeded per (user, day): the same rows, once
    out = switch_version(shards[0]["plan"])
    recs = wh.query(f"select * from {out['table']}")
    assert len(recs) == out["users"] * K and not recs.duplicated(["user_id", "rank"]).any()


def test_a_shard_killed_mid_copy_leaves_nothing_and_the_switch_waits_for_it(pg_ready, tmp_path):
    from ml.publish.shards import MissingPartError
    from ml.tasks.publishing import plan_publish, publish_recommendations, score_publish_shard, switch_version
    from tests.publish.dying_task import run_until_killed

    wh = pg_ready
    served = publish_recommendations(run_id="pg-before", k=K, **SERVE)
    before = wh.query("select * from serving.recommendations_current order by user_id, rank")
    shards = plan_publish(run_id="pg-killed", k=K, shards=2, **SERVE)
    score_publish_shard(shards[0]["plan"], 0)
    # shard 1 in its own process, SIGKILLed after its first COPY, before its commit
    run_until_killed("ml.publish.shards:copy_arrow", "score_publish_shard", shards[1]["plan"], tmp_path, 1)
    # the server rolled shard 1's transaction back: only shard 0's rows are staged
    staged = wh.query(f"select distinct _shard from {_staged(wh, 'pg-killed')}")
    assert staged["_shard"].tolist() == [0]
    after = wh.query("select * from serving.recommendations_current order by user_id, rank")
    pd.testing.assert_frame_equal(after, before)
    with pytest.raises(MissingPartError, match=r"shard 1 of 2 .* has written no part"):
        switch_version(shards[0]["plan"])
    newest = wh.query("select version from serving.publish_log order by created_at desc limit 1")
    assert newest["version"].iloc[0] == served["version"]
    # the retry of shard 1 completes the run
    score_publish_shard(shards[1]["plan"], 1)
    out = switch_version(shards[0]["plan"])
    recs = wh.query("select * from serving.recommendations_current")
    assert out["version"] != served["version"] and len(recs) == out["users"] * K
    assert not recs.duplicated(["user_id", "rank"]).any()


def test_parts_of_another_plan_are_refused_and_abandoned_runs_are_swept(pg_ready):
    from ml.tasks.publishing import plan_publish, score_publish_shard, switch_version

    wh = pg_ready
    old = plan_publish(run_id="pg-replanned", k=K, shards=1, **SERVE)[0]
    score_publish_shard(old["plan"], 0)
    new = {**old["plan"], "settings": {**old["plan"]["settings"], "k": 5}}
    with pytest.raises(RuntimeError, match="written under another plan"):
        switch_version(new)
    # the run is abandoned; two days later the next run's plan drops its staged tables
    staged = _staged(wh, "pg-replanned")
    assert _exists(wh, staged)
    with wh.connect() as con:
        wh.execute(con, "update serving.publish_parts set written_at = written_at - interval '49 hours'")
        con.commit()
    plan_publish(run_id="pg-next", k=K, shards=1, **SERVE)
    assert not _exists(wh, staged) and not _exists(wh, staged + "_log")
    left = wh.query("select distinct version from serving.publish_parts")
    assert left.empty


def test_a_switch_killed_before_its_commit_leaves_the_served_version_and_can_run_again(pg_ready, tmp_path):
    from ml.explore import columns as C
    from ml.tasks.publishing import plan_publish, publish_recommendations, score_publish_shard, switch_version
    from tests.publish.dying_task import run_until_killed

    wh = pg_ready
    served = publish_recommendations(run_id="pg-served", k=K, **SERVE)
    before = wh.query("select * from serving.recommendations_current order by user_id, rank")
    shards = plan_publish(run_id="pg-switch-killed", k=K, shards=2, **SERVE)
    for s in shards:
        score_publish_shard(s["plan"], s["shard"])
    # the switch in its own process, SIGKILLed after it moved the slate log, before its commit
    run_until_killed("ml.explore.store:move_log", "switch_version", shards[0]["plan"], tmp_path)
    after = wh.query("select * from serving.recommendations_current order by user_id, rank")
    pd.testing.assert_frame_equal(after, before)
    assert wh.query(f"select count(*) as n from {C.LOGGED_SLATES} where run_id = 'pg-switch-killed'")["n"].iloc[0] == 0
    staged = _staged(wh, "pg-switch-killed")
    assert _exists(wh, staged) and "_shard" in wh.query(f"select * from {staged} limit 1").columns
    # the retried switch publishes the staged parts once
    out = switch_version(shards[0]["plan"])
    recs = wh.query("select * from serving.recommendations_current")
    assert out["version"] != served["version"] and len(recs) == out["users"] * K
    logged = wh.query(f"select count(*) as n from {C.LOGGED_SLATES} where run_id = 'pg-switch-killed'")
    assert logged["n"].iloc[0] == len(recs) and not _exists(wh, staged)


def test_a_parts_large_contexts_are_written_with_lz4_where_the_server_has_it(pg_warehouse):
    from ml.explore import columns as C
    from ml.explore import store
    from ml.publish.shards import Shard, TableParts, lz4_offered

    wh = pg_warehouse
    with wh.connect() as con:
        store.ensure_tables(wh, con)
    # a context of ~14 KB: stored compressed out of line, as the large shop's are
    context = '{"features": [' + ",".join(f"{i / 7:.6f}" for i in range(1500)) + "]}"
    frame = pd.DataFrame(
        {
            "recommendation_id": ["R1", "R2"],
            "run_id": "run-1",
            "user_id": ["U1", "U2"],
            "policy": "greedy",
            "as_of": pd.Timestamp("2026-01-01"),
            "context": [context, context[::-1]],
        }
    )
    parts = TableParts(
        wh,
        "recommendations",
        "vtest",
        {"slate_contexts": "serving.part_contexts"},
        {"slate_contexts": C.SLATE_CONTEXTS},
    )
    parts.write(Shard(0, 1), {"slate_contexts": frame}, {"plan": "p"})

    stored = wh.query("select context, pg_column_compression(context) as method from serving.part_contexts")
    assert sorted(stored["context"]) == sorted(frame["context"])
    assert set(stored["method"]) == ({"lz4"} if lz4_offered(wh) else {"pglz"})
