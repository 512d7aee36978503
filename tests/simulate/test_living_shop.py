"""The living shop in CI: the tiny shop set up with every DAG, then two simulated days in which
its users answer the published slates and the DAGs run in asset order (tests/conftest.py::
living_shop). Each day's feedback must reach the bandit mart, profiles must move, the policy
gate must decide every day, every shown item must carry its propensity, and the UI must have
something to show in every section."""

from __future__ import annotations

import pandas as pd
import pytest

from ml.explore import columns as C

pytestmark = [pytest.mark.dags, pytest.mark.slow]


def _day_batch(living_shop, day: int) -> pd.DataFrame:
    return pd.read_parquet(living_shop["days_dir"] / f"day-{day:03d}" / "events.parquet")


def test_set_up_ran_every_dag_and_each_day_ran_the_daily_chain(living_shop):
    from ml.simulate.living import DAY_DAGS, SETUP_DAGS

    rows = living_shop["rows"]
    assert [r["day"] for r in rows] == [0, 1, 2]
    assert list(rows[0]["runs"]) == list(SETUP_DAGS)
    for r in rows[1:]:
        assert list(r["runs"]) == list(DAY_DAGS)
        assert len(set(r["runs"].values())) == len(DAY_DAGS)  # one run each
        assert r["impressions"] > 0 and r["policy"].startswith("slot_allocator")
        assert 0 <= r["ctr_exploration"] <= 1 and 0 <= r["ctr_exploitation"] <= 1
    # discoveries only accumulate
    assert rows[1]["interests_discovered"] <= rows[2]["interests_discovered"]


def test_each_days_answers_reach_the_bandit_feedback_mart(living_shop):
    wh = living_shop["wh"]
    mart = wh.query(f"select * from {C.BANDIT_FEEDBACK} where {C.HAS_PROPENSITY}")
    for day in (1, 2):
        batch = _day_batch(living_shop, day)
        answered = batch[batch["recommendation_id"].notna()]
        shown = answered[answered["event_type"] == "impression"]
        mine = mart[mart[C.RECOMMENDATION_ID].isin(set(shown["recommendation_id"]))]
        assert len(shown) > 0 and len(mine) == len(shown), day
        assert int(mine[C.CLICKED].sum()) == int((answered["event_type"] == "click").sum()), day
        # and the day's organic browsing landed too (all but the broken copies, "-X" ids)
        views = set(batch.loc[(batch["event_type"] == "view") & ~batch["event_id"].str.contains("-X"), "event_id"])
        got = wh.query("select count(*) as n from raw.events where event_id in (select unnest(?))", [list(views)])
        assert got["n"].iloc[0] == len(views) > 0


def test_a_broken_row_of_a_day_is_quarantined_and_the_rest_accepted(living_shop):
    wh = living_shop["wh"]
    batch = _day_batch(living_shop, 1)
    broken = batch[batch["event_id"].str.contains("-X")]
    assert len(broken) >= 1
    q = wh.query("select reason, original from raw.quarantine")
    assert q["original"].str.contains(broken["event_id"].iloc[0]).any()
    n_raw = wh.query(
        "select count(*) as n from raw.events where event_id in (select unnest(?))", [list(batch["event_id"])]
    )["n"].iloc[0]
    assert n_raw == len(batch) - len(broken)


def test_interest_profiles_change_between_days(living_shop):
    wh = living_shop["wh"]
    rows = living_shop["rows"]
    prof = wh.query("select as_of, user_id, tag, weight from ml.user_interest_profiles")
    as_of = pd.to_datetime(prof["as_of"]).dt.strftime("%Y-%m-%d")
    p1 = prof[as_of == rows[1]["date"]].set_index(["user_id", "tag"])["weight"].sort_index()
    p2 = prof[as_of == rows[2]["date"]].set_index(["user_id", "tag"])["weight"].sort_index()
    assert len(p1) and len(p2)
    joined = pd.concat([p1.rename("d1"), p2.rename("d2")], axis=1)
    changed = joined["d1"].ne(joined["d2"])
    assert changed.any()


def test_the_policy_gate_records_a_decision_each_day(living_shop):
    from ml.registry import Registry

    dec = Registry(living_shop["wh"]).decisions("policy")
    for r in living_shop["rows"][1:]:
        mine = dec[dec["run_id"] == r["runs"]["evaluate_policies"]]
        assert len(mine) == 1, r["day"]
        assert r["policy_gate"]["reason"] == mine["reason"].iloc[0]
    # from day 1 on there is logged feedback, so each decision rests on an evaluation
    assert "no evaluation" not in living_shop["rows"][2]["policy_gate"]["reason"]


def test_every_shown_item_of_the_exploring_policy_carries_its_propensity(living_shop):
    wh = living_shop["wh"]
    for r in living_shop["rows"][1:]:
        logged = wh.query(
            f"select * from {C.LOGGED_SLATES} where {C.RUN_ID} = ?", [r["runs"]["publish_recommendations"]]
        )
        assert len(logged) > 0
        assert logged[C.PROPENSITY].notna().all()
        assert logged[C.PROPENSITY].between(0, 1, inclusive="right").all()
        assert logged[C.IS_EXPLORATION].any() and (~logged[C.IS_EXPLORATION].astype(bool)).any()
    # what day 2's users saw is day 1's publish: every impression joins its logged propensity
    mart = wh.query(f"select * from {C.BANDIT_FEEDBACK}")
    day2 = _day_batch(living_shop, 2)
    shown = set(day2.loc[day2["event_type"] == "impression", "recommendation_id"])
    mine = mart[mart[C.RECOMMENDATION_ID].isin(shown)]
    assert len(mine) and mine[C.HAS_PROPENSITY].all()


def test_the_ui_answers_every_section_with_data(living_shop, tmp_path):
    from ml.ui import views
    from ml.ui.reader import WarehouseReader

    wh = living_shop["wh"]
    user_id = wh.query(
        "select min(r.user_id) as u from serving.recommendations_current r "
        "join ml.user_interest_profiles p on p.user_id = r.user_id"
    )["u"].iloc[0]
    reader = WarehouseReader(wh, snapshot_dir=tmp_path / "snaps", refresh_seconds=0.0, quiet_seconds=0.0)
    with reader.session() as rs:
        models = views.models(rs)
        quality = views.quality(rs)
        exploration = views.exploration(rs)
        campaigns = views.campaigns(rs)
        user = views.user(rs, str(user_id))
    families = {f["family"]: f for f in models["families"]}
    for fam in ("recommender", "tagger", "policy"):
        assert families[fam]["available"] and families[fam]["versions"] and families[fam]["decisions"], fam
    assert quality["gates"]["available"] and quality["gates"]["gates"]
    assert quality["quarantine"]["available"] and quality["quarantine"]["total"] > 0
    assert quality["batches"]["available"] and quality["batches"]["batches"]
    assert exploration["policy"]["serving"] and exploration["estimates"]["current"]
    assert exploration["ctr"]["available"] and exploration["ctr"]["days"] and exploration["ctr"]["share"]
    # publish_audiences' report_campaigns reported the campaign whose window the shop lived through
    reported = [c for c in campaigns["campaigns"] if c["report"]]
    assert campaigns["reports"]["available"] and reported
    assert {m["metric"] for m in reported[0]["report"]["metrics"]} == {"clicks", "purchases", "revenue"}
    # publish_audiences' generate_copy wrote each live campaign's copy for the published audiences
    assert campaigns["copy"]["available"]
    written = [a for c in campaigns["campaigns"] for a in c["copy"]]
    assert written and all(a["candidates"] and len(a["variants"]) == 3 for a in written)
    assert user["profile"]["available"] and (user["profile"]["known"] or user["profile"]["candidate"])
    assert user["behaviour"]["available"] and user["behaviour"]["counts"]
    assert len(user["recommendations"]["items"]) == 10


def test_the_demo_summary_tells_what_marketing_copy_was_written(living_shop):
    from ml.demo import _copy_summary, render

    wh = living_shop["wh"]
    with wh.connect(read_only=True) as con:
        copy = _copy_summary(wh, con)
    published = wh.query(
        "select count(*) as n from ml.copy_candidates c where published and written_at = (select max(written_at) "
        "from ml.copy_candidates l where l.audience = c.audience and l.campaign = c.campaign)"
    )["n"].iloc[0]
    assert copy["variants"] == published > 0 and copy["candidates"] >= copy["passed"]
    text = render({"landed": {}, "models": [], "examples": {}, "copy": copy})
    assert f"Marketing copy: {copy['variants']} variants" in text and "e.g. " in text


@pytest.mark.unit
def test_the_demo_examples_keep_their_columns_when_a_title_is_long():
    from ml.demo import render

    title = "I000064 Thrifto Heritage sun protection fluid, green"  # 51 characters
    items = [
        {"rank": 1, "item": title, "reason": "similar to 'Sun cream' you interacted with"},
        {"rank": 2, "item": "I000045 Natural sunscreen", "reason": "popular now"},
    ]
    text = render({"landed": {}, "models": [], "examples": {"U1": items}})
    lines = [ln for ln in text.splitlines() if ". I0000" in ln]
    cut = "I000064 Thrifto Heritage sun protection fluid, …"
    assert lines[0] == f"   1. {cut} similar to 'Sun cream' you interacted with"
    assert lines[0].index("similar") == lines[1].index("popular")  # the reasons start in one column


def test_the_day_table_shows_each_simulated_day(living_shop):
    from ml.simulate.living import day_table

    text = day_table(living_shop["rows"])
    lines = text.splitlines()
    assert len(lines) == 2 + 2  # header, rule, two days
    assert living_shop["rows"][2]["date"] in lines[-1]


def test_a_second_shop_in_the_same_warehouse_is_refused_by_the_demo(living_shop, tmp_path, monkeypatch):
    from ml.simulate.living import LivingShop, LoopSettings

    monkeypatch.setenv("INTERESTFLOW_WAREHOUSE", living_shop["wh"].url)
    other = LivingShop(tmp_path / "small-seed7", LoopSettings(size="small"))
    assert other.other_shops() == [living_shop["shop"].key]
    assert living_shop["shop"].other_shops() == []
