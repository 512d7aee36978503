"""The publish_recommendations DAG with campaign windows and the new-item budget, for real:
tiny shop -> ingest -> dbt build -> champion -> publish (DAG run and direct calls)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from ml.marketing.campaigns import HOLDOUT, TREATMENT, arm, load_campaigns

pytestmark = [pytest.mark.dags, pytest.mark.slow]

SALE = load_campaigns()["winter_outdoor_sale"]
COLS = ["user_id", "rank", "item_id", "score", "propensity", "propensity_se", "is_exploration"]


@pytest.fixture(scope="module")
def published(tiny_shop, airflow_runtime, tmp_path_factory):
    from ml.features.dbt import build
    from ml.ingest.landing import ingest_paths
    from ml.orchestration.local import run_dag
    from ml.tasks.publishing import publish_recommendations
    from ml.tasks.training import evaluate_and_gate, train_candidate
    from ml.warehouse import Warehouse

    root = tmp_path_factory.mktemp("publish-marketing")
    wh = Warehouse(f"duckdb:///{root / 'warehouse.duckdb'}")
    out: dict = {"wh": wh}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INTERESTFLOW_WAREHOUSE", wh.url)
        mp.setenv("INTERESTFLOW_ARTIFACTS", str(root / "artifacts"))
        mp.setenv("INTERESTFLOW_DATA_DOCS", str(root / "data_docs"))
        ingest_paths([tiny_shop], wh, gate=False)
        build(wh, target_path=root / "dbt-target")
        cand = train_candidate("item_knn", {"neighbours": 50, "shrinkage": 10.0}, run_id="train-1")
        evaluate_and_gate([cand], run_id="train-1")
        off = {"new_item_budget": {"slot_probability": 0.0}, "policy": "slot_allocator", "propensity_draws": 32}
        publish_recommendations(run_id="plain", campaigns=False, **off)
        out["plain"] = wh.query("select * from serving.recommendations_current")
        publish_recommendations(run_id="plain", campaign_at="2026-12-01T00:00:00", **off)
        out["outside"] = wh.query("select * from serving.recommendations_current")
        conf = {
            "policy": "slot_allocator",
            "propensity_draws": 32,
            "campaign_at": "2026-10-20T00:00:00",
            "campaign_holdout_share": 0.25,
            "new_item_budget": {"slot_probability": 0.5, "daily_cap": 10, "max_age_days": 30},
        }
        out["run"] = run_dag("publish_recommendations", conf)
        out["recs"] = wh.query("select * from serving.recommendations_current")
        out["log"] = wh.query(
            "select user_id, position, item_id, propensity, is_exploration from ml.logged_slates where run_id = ?",
            [out["run"].run_id],
        )
        out["items"] = wh.query("select item_id, age_days, category_tag, style_tag from marts.item_features")
    return out


def test_outside_the_window_the_published_rows_do_not_change(published):
    a = published["plain"].sort_values(["user_id", "rank"]).reset_index(drop=True)
    b = published["outside"].sort_values(["user_id", "rank"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a[COLS], b[COLS])
    assert a["campaign"].isna().all() and b["campaign"].isna().all()


def test_the_dag_applies_the_campaign_within_the_cap_and_spares_the_holdout(published):
    recs, plain = published["recs"], published["plain"]
    users = recs["user_id"].unique()
    sale = SALE.__class__(**{**SALE.__dict__, "holdout_share": 0.25})  # the Param overrode the YAML
    arms = pd.Series(arm(users, sale), index=users)
    touched = recs[recs["campaign"].notna()]
    assert len(touched) and (touched["campaign"] == SALE.name).all()
    assert touched.groupby("user_id").size().max() <= math.floor(SALE.max_share * 10)
    assert (arms[touched["user_id"].unique()] == TREATMENT).all()
    boosted = published["items"]
    boosted = set(
        boosted.loc[
            boosted["category_tag"].isin(SALE.boost_tags) | boosted["style_tag"].isin(SALE.boost_tags), "item_id"
        ]
    )
    assert touched["item_id"].isin(boosted).all()
    # holdout users: the plain slate apart from the new-item slot
    held = arms.index[arms == HOLDOUT]
    assert len(held)
    mine = recs[recs["user_id"].isin(held) & ~recs["new_item"]].set_index(["user_id", "rank"])
    base = plain.set_index(["user_id", "rank"]).loc[mine.index]
    assert (mine["item_id"] == base["item_id"]).all()
    assert (mine["is_exploration"] == base["is_exploration"]).all()


def test_new_items_get_bounded_logged_exploration_slots(published):
    recs, items = published["recs"], published["items"]
    new = recs[recs["new_item"]]
    young = set(items.loc[items["age_days"] <= 30, "item_id"])
    assert len(new) > 0 and new["item_id"].isin(young).all()
    assert new["is_exploration"].all() and (new["rank"] == 10).all()
    assert new["propensity"].between(0, 0.5, inclusive="right").all()  # at most slot_probability
    assert new.groupby("item_id").size().max() <= 10 * 2.5  # daily cap 10 in expectation, one day's noise
    assert recs.groupby("user_id")["item_id"].nunique().eq(recs.groupby("user_id").size()).all()
    # what was published is what was logged for OPE
    log = published["log"].rename(columns={"position": "rank"})
    both = recs.merge(log, on=["user_id", "rank"], suffixes=("", "_log"))
    assert len(both) == len(recs)
    assert (both["item_id"] == both["item_id_log"]).all()
    assert (both["propensity"] - both["propensity_log"]).abs().max() < 1e-12
    assert (both["is_exploration"] == both["is_exploration_log"]).all()
