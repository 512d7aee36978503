"""Every known user gets k items: a user from the users batch with no events gets a cold-start
slate (popular interests drawn by the serving policy, exact propensities, logged like any slate)
and a personal one once events arrive."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.dbt

K = 10
NEW = ["N0000001", "N0000002", "N0000003"]
SERVE = {"policy": "slot_allocator", "exploration_budget": {"default": 0.3}, "propensity_draws": 32}


def _land(df: pd.DataFrame, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True)
    df.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


def _rebuild_and_publish(wh, tiny_shop_target: Path, run_id: str) -> dict:
    from ml.features.dbt import build
    from ml.tasks.publishing import publish_recommendations

    build(wh, target_path=tiny_shop_target)
    return publish_recommendations(run_id=run_id, k=K, **SERVE)


def test_users_without_history_get_a_cold_start_slate_then_a_personal_one(warehouse, tiny_shop, tmp_path):
    from ml.explore import columns as C
    from ml.features.dbt import build
    from ml.ingest.landing import ingest_paths
    from ml.tasks.training import evaluate_and_gate, train_candidate

    wh = warehouse
    ingest_paths([tiny_shop], wh)
    users = pd.read_parquet(tiny_shop / "users.parquet")
    signups = users.head(len(NEW)).assign(user_id=NEW, signup_time=pd.Timestamp("2026-10-30", tz="UTC"))
    ingest_paths([_land(signups, tmp_path / "signups", "users")], wh)
    build(wh, target_path=tmp_path / "target")
    cand = train_candidate("item_knn", {"neighbours": 50, "shrinkage": 10.0}, run_id="train-1")
    evaluate_and_gate([cand], run_id="train-1")

    pub = _rebuild_and_publish(wh, tmp_path / "target", "pub-1")
    recs = wh.query("select * from serving.recommendations_current")
    cold = recs[recs["user_id"].isin(NEW)]
    assert pub["cold_start_users"] == len(NEW)
    assert sorted(cold["user_id"].unique()) == NEW
    assert (cold.groupby("user_id")["item_id"].nunique() == K).all()
    assert cold["cold_start"].all() and not recs.loc[~recs["user_id"].isin(NEW), "cold_start"].any()
    assert cold["propensity"].between(0, 1, inclusive="right").all()
    assert cold.loc[~cold["new_item"], "reason"].str.endswith("while we learn what you like").all()
    # logged like any slate, so their feedback reaches the feedback mart and OPE
    logged = wh.query(f"select * from {C.LOGGED_SLATES} where run_id = 'pub-1'")
    mine = logged[logged["user_id"].isin(NEW)].sort_values(["user_id", C.POSITION])
    shown = cold.sort_values(["user_id", "rank"])
    assert mine["item_id"].tolist() == shown["item_id"].tolist()
    assert mine[C.PROPENSITY].round(9).tolist() == shown["propensity"].round(9).tolist()
    contexts = wh.query(f"select recommendation_id, user_id from {C.SLATE_CONTEXTS} where run_id = 'pub-1'")
    assert set(NEW) <= set(contexts["user_id"])

    # the next day N0000001 views two items: its slate is now the champion's, personal
    events = pd.read_parquet(tiny_shop / "events.parquet")
    views = events[events["event_type"] == "view"].head(2)
    after = pd.Timestamp(events["event_time"].max()) + pd.Timedelta(hours=1)
    views = views.assign(
        event_id=["EN000001", "EN000002"],
        user_id=NEW[0],
        session_id="SN000001",
        event_time=[after, after + pd.Timedelta(minutes=1)],
        recommendation_id=None,
        position=pd.array([None, None], dtype="Int64"),
    )
    ingest_paths([_land(views, tmp_path / "day-2", "events")], wh, gate=False)
    pub2 = _rebuild_and_publish(wh, tmp_path / "target", "pub-2")
    recs2 = wh.query("select * from serving.recommendations_current")
    assert pub2["cold_start_users"] == len(NEW) - 1
    first = recs2[recs2["user_id"] == NEW[0]]
    assert len(first) == K and not first["cold_start"].any()
    # the champion's candidates now: its reasons name the items the user viewed
    assert first["reason"].str.startswith("similar to").any()
    assert recs2.loc[recs2["user_id"].isin(NEW[1:]), "cold_start"].all()
