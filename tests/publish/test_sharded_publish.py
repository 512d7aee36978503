"""Publishing in shards: plan → score each shard (its own part) → switch. The shards split the
users once each, a retried shard replaces its part, a killed shard leaves the served version
alone, and the switch publishes only complete parts of its own plan."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.dbt

K = 10
SERVE = {"policy": "slot_allocator", "exploration_budget": {"default": 0.3}, "propensity_draws": 32}


@pytest.fixture(scope="module")
def trained(tiny_shop: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny shop ingested, its marts built and a champion trained, once for the module: a
    folder with the warehouse file and the champion's artifacts (which the tests only read)."""
    from ml.features.dbt import build
    from ml.ingest.landing import ingest_paths
    from ml.tasks.training import evaluate_and_gate, train_candidate
    from ml.warehouse import Warehouse

    folder = tmp_path_factory.mktemp("sharded-publish")
    wh = Warehouse(f"duckdb:///{folder / 'wh.duckdb'}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INTERESTFLOW_WAREHOUSE", wh.url)
        mp.setenv("INTERESTFLOW_ARTIFACTS", str(folder / "artifacts"))
        ingest_paths([tiny_shop], wh)
        build(wh, target_path=folder / "target")
        cand = train_candidate("item_knn", {"neighbours": 50, "shrinkage": 10.0}, run_id="train-1")
        evaluate_and_gate([cand], run_id="train-1")
    return folder


@pytest.fixture()
def ready(trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A private copy of the trained warehouse for one test (the default warehouse for it)."""
    from ml.warehouse import Warehouse

    path = tmp_path / "wh.duckdb"
    shutil.copy(trained / "wh.duckdb", path)
    wh = Warehouse(f"duckdb:///{path}")
    monkeypatch.setenv("INTERESTFLOW_WAREHOUSE", wh.url)
    monkeypatch.setenv("INTERESTFLOW_ARTIFACTS", str(trained / "artifacts"))
    return wh


def _parts(run_id: str, n: int, frame: str = "slates") -> list[pd.DataFrame]:
    from ml.publish.recommendations import parts_folder
    from ml.publish.shards import Shard

    folder = parts_folder(run_id)
    return [pd.read_parquet(folder / Shard(i, n).name / f"{frame}.parquet") for i in range(n)]


def test_shards_split_the_users_once_each_and_publish_as_one_version(ready):
    from ml.explore import columns as C
    from ml.explore.store import read_known_users
    from ml.publish.shards import shard_of
    from ml.tasks.publishing import plan_publish, score_publish_shard, switch_version

    wh = ready
    shards = plan_publish(run_id="split", k=K, shards=3, **SERVE)
    assert [s["shard"] for s in shards] == [0, 1, 2]
    plan = shards[0]["plan"]
    for s in shards:
        score_publish_shard(s["plan"], s["shard"])
    parts = _parts("split", 3)
    # each shard holds exactly the users its hash names, and no user is in two shards
    for i, part in enumerate(parts):
        users = part["user_id"].unique()
        assert len(users) > 0 and (shard_of(users, 3) == i).all()
    known = set(read_known_users(wh))
    assert sum(p["user_id"].nunique() for p in parts) == len(known)
    out = switch_version(plan)
    recs = wh.query(f"select * from {out['table']}")
    assert out["shards"] == 3 and out["users"] == len(known) == recs["user_id"].nunique()
    assert len(recs) == len(known) * K and not recs.duplicated(["user_id", "rank"]).any()
    assert recs.groupby("user_id")["item_id"].nunique().eq(K).all()
    # the slate log holds every shown item of every shard, once
    logged = wh.query(f"select * from {C.LOGGED_SLATES} where run_id = 'split'")
    assert len(logged) == len(recs) and not logged.duplicated(["user_id", C.POSITION]).any()
    ctx = wh.query(f"select user_id from {C.SLATE_CONTEXTS} where run_id = 'split'")
    assert sorted(ctx["user_id"]) == sorted(known)
    from ml.publish.recommendations import parts_folder

    assert not parts_folder("split").exists()  # the parts are gone once published


def test_each_users_context_is_the_same_in_one_shard_and_in_three(ready):
    """What a context holds of its own user (tags, known tags, the user's impressions and clicks
    per tag, candidates and their scores, segment, sessions) must not depend on the shard count:
    a shard keeps only its users' feedback pairs, and must keep all of theirs. (The priors use the
    shard's pooled base rates, documented in ``ml.publish.recommendations``, so they may differ.)"""
    import json

    from ml.explore.store import load_feedback
    from ml.tasks.publishing import plan_publish, score_publish_shard

    assert len(load_feedback(ready)) > 0  # (the contexts carry each user's feedback)
    own = ("tags", "known", "impressions", "clicks", "items", "item_scores", "segment", "n_sessions")

    def contexts(n: int) -> dict[str, dict]:
        for s in plan_publish(run_id="same", k=K, shards=n, **SERVE):
            score_publish_shard(s["plan"], s["shard"])
        rows = pd.concat(_parts("same", n, "slate_contexts"))
        assert not rows["user_id"].duplicated().any()
        return {u: {k: json.loads(c)[k] for k in own} for u, c in zip(rows["user_id"], rows["context"], strict=True)}

    one, three = contexts(1), contexts(3)
    assert one.keys() == three.keys() and len(one) > 0
    assert any(sum(c["impressions"]) > 0 for c in one.values())  # (feedback reached the contexts)
    assert three == one


def test_a_retried_shard_replaces_its_part_and_the_version_has_no_duplicates(ready):
    from ml.tasks.publishing import plan_publish, score_publish_shard, switch_version

    wh = ready
    shards = plan_publish(run_id="retry", k=K, shards=2, **SERVE)
    for s in shards:
        score_publish_shard(s["plan"], s["shard"])
    first = _parts("retry", 2)[1]
    score_publish_shard(shards[1]["plan"], 1)  # the retry of shard 1
    again = _parts("retry", 2)[1]
    pd.testing.assert_frame_equal(first, again)  # seeded per (user, day): the same rows
    out = switch_version(shards[0]["plan"])
    recs = wh.query(f"select * from {out['table']}")
    assert len(recs) == out["users"] * K and not recs.duplicated(["user_id", "rank"]).any()


def test_a_killed_shard_leaves_the_served_version_and_the_switch_waits_for_its_part(ready, tmp_path):
    from ml.publish.recommendations import parts_folder
    from ml.publish.shards import MissingPartError
    from ml.tasks.publishing import plan_publish, publish_recommendations, score_publish_shard, switch_version
    from tests.publish.dying_task import run_until_killed

    wh = ready
    served = publish_recommendations(run_id="before", k=K, **SERVE)
    before = wh.query("select * from serving.recommendations_current")
    shards = plan_publish(run_id="killed", k=K, shards=2, **SERVE)
    score_publish_shard(shards[0]["plan"], 0)
    # shard 1 in its own process, SIGKILLed after writing its first Parquet file
    run_until_killed("pandas:DataFrame.to_parquet", "score_publish_shard", shards[1]["plan"], tmp_path, 1)
    # the served version is untouched, and the switch names the missing shard
    pd.testing.assert_frame_equal(wh.query("select * from serving.recommendations_current"), before)
    with pytest.raises(MissingPartError, match="shard 1 of 2 has written no part"):
        switch_version(shards[0]["plan"])
    assert (
        wh.query("select version from serving.publish_log order by created_at desc limit 1")["version"].iloc[0]
        == served["version"]
    )
    # the retry of shard 1 completes the run
    score_publish_shard(shards[1]["plan"], 1)
    out = switch_version(shards[0]["plan"])
    recs = wh.query("select * from serving.recommendations_current")
    assert out["version"] != served["version"] and len(recs) == out["users"] * K
    assert not parts_folder("killed").exists()


def test_the_switch_refuses_parts_written_under_another_plan(ready):
    from ml.tasks.publishing import plan_publish, score_publish_shard, switch_version

    old = plan_publish(run_id="replanned", k=K, shards=1, **SERVE)[0]
    score_publish_shard(old["plan"], 0)
    new = {**old["plan"], "settings": {**old["plan"]["settings"], "k": 5}}
    with pytest.raises(RuntimeError, match="written under another plan"):
        switch_version(new)


def test_bad_shard_numbers_are_refused(ready):
    from ml.publish.shards import Shard
    from ml.tasks.publishing import plan_publish

    with pytest.raises(ValueError, match="shards must be >= 1"):
        plan_publish(run_id="none", shards=0)
    with pytest.raises(ValueError, match="bad shard 2 of 2"):
        Shard(2, 2)


def test_a_shard_without_users_writes_an_empty_part_and_one_user_shards_publish(ready):
    from ml.explore.store import read_known_users
    from ml.publish.shards import shard_of
    from ml.tasks.publishing import plan_publish, score_publish_shard

    known = read_known_users(ready)
    n = 400  # more shards than the tiny shop's users: most hold nobody, many one user
    sizes = pd.Series(shard_of(known, n)).value_counts()
    empty = min(set(range(n)) - set(sizes.index))
    single = sorted(sizes[sizes == 1].index)[:3]
    shards = plan_publish(run_id="sparse", k=K, shards=n, **SERVE)
    out = score_publish_shard(shards[empty]["plan"], empty)
    assert out["users"] == out["rows"] == 0
    for i in single:  # on most of them no user draws a new-item slot
        out = score_publish_shard(shards[i]["plan"], i)
        assert out["users"] == 1 and out["rows"] == K
