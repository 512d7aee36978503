"""The platform loop on a real warehouse: publish with a policy -> feedback events -> ingest ->
dbt (marts.bandit_feedback) -> off-policy evaluation -> policy gate -> manual override."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ml.explore import columns as C

pytestmark = [pytest.mark.dbt, pytest.mark.slow]

CANDIDATES = [
    {"policy": "greedy", "params": {}},
    {"policy": "thompson", "params": {}},
    {"policy": "slot_allocator", "params": {"budget": {"default": 0.2, "new": 0.1}, "min_sessions": 3}},
]


@pytest.fixture(scope="module")
def loop(tmp_path_factory, tiny_shop, run_policy_loop):
    """A DuckDB warehouse that went once around the loop with the slot allocator serving."""
    from ml.warehouse import Warehouse

    d = tmp_path_factory.mktemp("policy-loop")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INTERESTFLOW_WAREHOUSE", f"duckdb:///{d / 'wh.duckdb'}")
        mp.setenv("INTERESTFLOW_ARTIFACTS", str(d / "artifacts"))
        yield run_policy_loop(Warehouse.from_env(), d)


def test_published_slates_carry_policy_propensity_and_exploration(loop):
    recs, pub = loop["recs"], loop["publish"]
    assert pub["policy"] == "slot_allocator" and pub["policy_version"].startswith("slot_allocator-adhoc-")
    assert {"policy", "policy_version", "propensity", "propensity_se", "is_exploration", "reason_tag"} <= set(recs)
    assert recs["propensity"].between(0, 1, inclusive="right").all()
    assert recs["recommendation_id"].nunique() == recs["user_id"].nunique()
    explored = recs[recs["is_exploration"]]
    assert 0 < len(explored) < len(recs)
    assert explored["reason"].str.startswith("something new for you").all()
    assert recs["reason_tag"].str.startswith("cat:").all()


def test_feedback_mart_matches_the_in_memory_join(loop):
    from ml.explore.feedback import feedback_from_events

    wh = loop["wh"]
    mart = wh.query(f"select * from {C.BANDIT_FEEDBACK}")
    logged = wh.query(f"select * from {C.LOGGED_SLATES}")
    ev = wh.query(
        "select event_type, user_id, item_id, recommendation_id, slot_position as position, event_at, price, "
        "quantity from staging.stg_shop__events where event_type in ('impression', 'click', 'purchase')"
    )
    expected = feedback_from_events(logged, ev)
    cols = [C.FEEDBACK_ID, C.CLICKED, C.PURCHASED, C.REVENUE, C.TAG, C.PROPENSITY, C.HAS_PROPENSITY]
    got = mart[cols].sort_values(C.FEEDBACK_ID).reset_index(drop=True)
    want = expected[cols].sort_values(C.FEEDBACK_ID).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    # every published slot is joined with the propensity it was published with
    mine = mart[mart[C.LOGGED_RUN_ID] == "pub-1"].merge(
        loop["recs"], left_on=[C.RECOMMENDATION_ID, C.POSITION], right_on=["recommendation_id", "rank"]
    )
    assert len(mine) == len(loop["recs"])
    assert (mine["propensity_x"] == mine["propensity_y"]).all()
    assert mine[C.CLICKED].sum() == (loop["events"]["event_type"] == "click").sum()
    # the shop's own earlier slates have feedback but no logged propensity
    assert (~mart.loc[mart[C.LOGGED_RUN_ID].isna(), C.HAS_PROPENSITY]).all()
    assert mart[C.HAS_PROPENSITY].sum() == len(loop["recs"])


def test_republishing_a_run_gives_the_same_rows_and_log(loop):
    cols = ["user_id", "rank", "item_id", "score", "propensity", "is_exploration", "recommendation_id"]
    sort = ["user_id", "rank"]
    pd.testing.assert_frame_equal(
        loop["recs"][cols].sort_values(sort).reset_index(drop=True),
        loop["again"]["recs"][cols].sort_values(sort).reset_index(drop=True),
    )
    pd.testing.assert_frame_equal(loop["first_log"], loop["again"]["log"])
    n_ctx = loop["wh"].query(f"select count(*) as n from {C.SLATE_CONTEXTS} where run_id = 'pub-1'")["n"].iloc[0]
    assert n_ctx == loop["recs"]["user_id"].nunique()


def test_evaluation_writes_estimates_and_the_gate_records_its_decision(loop):
    from ml.registry import Registry
    from ml.tasks.policies import evaluate_policies, gate_policies

    wh = loop["wh"]
    ev = evaluate_policies(run_id="eval-1", candidates=CANDIDATES, n_bootstrap=100, propensity_draws=64)
    assert ev["evaluated"] and ev["n_rounds"] == len(loop["recs"])
    assert ev["current"]["policy"] == "greedy"  # nothing promoted yet: the default serves
    est = wh.query(f"select * from {C.POLICY_ESTIMATES} where run_id = 'eval-1'")
    assert set(est["estimator"]) == {"dm", "ips", "snips", "dr", "sndr", "switch-dr", "dros"}
    assert est.loc[est["is_current"], "policy"].unique().tolist() == ["greedy"]
    assert (est["ci_low"] <= est["estimate"] + 1e-12).all() and (est["estimate"] <= est["ci_high"] + 1e-12).all()
    # the logging policy evaluated on its own logs recovers its on-policy click rate
    logging = next(c for c in ev["candidates"] if c["policy"] == "slot_allocator")
    ips = logging["by_estimator"]["ips"]
    assert ips[1] <= ev["logged_ctr"] <= ips[2]
    # re-running the evaluation replaces its rows
    evaluate_policies(run_id="eval-1", candidates=CANDIDATES, n_bootstrap=100, propensity_draws=64)
    assert len(wh.query(f"select * from {C.POLICY_ESTIMATES} where run_id = 'eval-1'")) == len(est)

    res = gate_policies(ev, run_id="eval-1")
    dec = Registry(wh).decisions("policy")
    last = dec.iloc[-1]
    assert last["run_id"] == "eval-1" and bool(last["promoted"]) == res["promoted"]
    best = max(ev["candidates"], key=lambda c: c["ci_low"])
    assert res["promoted"] == (best["ci_low"] > ev["current"]["estimate"])
    assert "lower bound" in last["reason"]


def test_evaluation_by_revenue_keeps_click_through_as_the_guard(loop):
    from ml.registry import Registry
    from ml.tasks.policies import evaluate_policies, gate_policies

    wh = loop["wh"]
    mart = wh.query(f"select * from {C.BANDIT_FEEDBACK} where has_propensity")
    assert mart[C.REVENUE].sum() > 0  # the answered slates' purchases carry catalogue prices
    kw = {"candidates": CANDIDATES, "n_bootstrap": 100, "propensity_draws": 64}
    by_revenue = evaluate_policies(run_id="eval-rev", reward="revenue", **kw)
    assert by_revenue["reward"] == "revenue"
    assert by_revenue["logged_reward"] == pytest.approx(mart[C.REVENUE].mean())
    assert by_revenue["logged_ctr"] == pytest.approx(mart[C.CLICKED].mean())
    est = wh.query(f"select * from {C.POLICY_ESTIMATES} where run_id = 'eval-rev'")
    assert set(est["reward"]) == {"revenue"}
    # the logging policy on its own logs: revenue per slot and, as the guard, click-through
    logging = next(c for c in by_revenue["candidates"] if c["policy"] == "slot_allocator")
    ips = logging["by_estimator"]["ips"]
    assert ips[1] <= by_revenue["logged_reward"] <= ips[2]
    assert logging["ctr_low"] <= logging["ctr"] <= logging["ctr_high"] < 1
    # revenue is not a rate: its next-day interval is not cut at 1
    assert by_revenue["daily_spread"]["sd"] > 0 and logging["next_high"] > logging["ci_high"]
    # the click-through guard is the click evaluation's estimate of the same policy
    by_click = evaluate_policies(run_id="eval-click", **kw)
    same = next(c for c in by_click["candidates"] if c["policy"] == "slot_allocator")
    assert logging["ctr"] == pytest.approx(same["estimate"])
    with pytest.raises(ValueError, match="unknown reward 'margin'"):
        evaluate_policies(run_id="eval-bad", reward="margin", **kw)

    gate_policies(by_revenue, run_id="eval-rev", ctr_guard=0.01)
    last = Registry(wh).decisions("policy").iloc[-1]
    assert last["run_id"] == "eval-rev"
    details = json.loads(last["details"])
    assert details["reward"] == "revenue" and details["ctr_guard"] == 0.01
    assert {"ctr", "ctr_low", "ctr_high"} <= set(details["current"])


def test_manual_override_needs_a_reason_and_then_serves(loop):
    from ml.cli import main
    from ml.registry import Registry
    from ml.tasks.publishing import publish_recommendations

    assert main(["policy", "override", "epsilon_greedy", "--params", '{"epsilon": 0.05}', "--reason", " "]) == 2
    assert main(["policy", "override", "epsilon_greedy", "--params", '{"epsilon": 0.05}', "--reason", "A/B week"]) == 0
    champ = Registry(loop["wh"]).champion("policy")
    assert champ["model_name"] == "epsilon_greedy" and champ["params"] == {"epsilon": 0.05}
    assert "A/B week" in Registry(loop["wh"]).decisions("policy").iloc[-1]["reason"]
    out = publish_recommendations(run_id="pub-2", propensity_draws=32)
    assert out["policy"] == "epsilon_greedy" and out["policy_version"] == champ["version_id"]
    assert Path(champ["artifact_path"]).exists()


def test_the_assistants_answers_reach_the_feedback_mart_with_their_propensities(loop, tmp_path, capsys):
    """Ask -> slate log -> load_assistant_log -> the shop exports impressions and a click on the
    answer -> ingest -> dbt: the mart joins them with the assistant's logged propensities."""
    from ml.assistant.index import refresh_item_embeddings
    from ml.assistant.log import load_assistant_log
    from ml.assistant.service import Assistant
    from ml.features.dbt import build
    from ml.ingest.landing import ingest_paths

    wh = loop["wh"]
    refresh_item_embeddings()
    user = loop["recs"]["user_id"].iloc[0]
    feats = wh.query("select item_id, category_l3, category_tag from marts.item_features")
    leaf = feats["category_l3"].value_counts().index[0]  # the biggest category: room to explore in it
    other_tag = feats.loc[feats["category_l3"] == leaf, "category_tag"].iloc[0]
    with wh.connect() as con:  # a candidate interest for the user, as backfill_tags would write it
        wh.execute(
            con, "create table if not exists ml.user_interest_profiles (user_id varchar, tag varchar, status varchar)"
        )
        wh.execute(con, "insert into ml.user_interest_profiles values (?, ?, 'candidate')", [user, other_tag])
        con.commit()
    assistant = Assistant(wh, explore_share=1.0, log_folder=tmp_path / "log")
    answer = assistant.ask(user, leaf, k=3)
    items = answer.items
    assert answer.recommendation_id.startswith("AS") and [i["position"] for i in items] == [1, 2, 3]
    assert items[-1]["is_exploration"] and items[-1]["propensity"] == 1.0 and items[-1]["tag"] == other_tag
    assert "something new for you" in items[-1]["why"]
    assert load_assistant_log(folder=tmp_path / "log")["slates"] == 1

    t = pd.Timestamp.now(tz="UTC").floor("s")
    rid = answer.recommendation_id
    events = pd.DataFrame(
        {
            "event_id": [f"{rid}-imp-{i['position']}" for i in items] + [f"{rid}-clk-1"],
            "event_time": [t] * len(items) + [t + pd.Timedelta(seconds=20)],
            "user_id": user,
            "session_id": f"S-{rid}",
            "event_type": ["impression"] * len(items) + ["click"],
            "item_id": [i["item_id"] for i in items] + [items[0]["item_id"]],
            "recommendation_id": rid,
            "position": pd.array([i["position"] for i in items] + [1], dtype="Int64"),
        }
    )
    (tmp_path / "export").mkdir()
    events.to_parquet(tmp_path / "export" / "events-assistant.parquet", index=False)
    ingest_paths([tmp_path / "export"], wh, gate=False)
    build(wh, select="+bandit_feedback", target_path=tmp_path / "target")
    mart = wh.query(f"select * from {C.BANDIT_FEEDBACK} where recommendation_id = ? order by position", [rid])
    assert mart["has_propensity"].all() and (mart["policy"] == "assistant").all()
    assert mart["propensity"].tolist() == [i["propensity"] for i in items]
    assert mart["is_exploration"].tolist() == [i["is_exploration"] for i in items]
    assert mart["clicked"].tolist() == [1, 0, 0]
    # the command line reads the assistant's rounds back for its exploration report
    from ml.cli import main

    assert main(["assistant", "report", "--shares", "0,1"]) == 0
    out = capsys.readouterr().out
    assert "estimated click-through by exploration share" in out and "effective_n" in out
    assert main(["assistant", "report", "--shares", "2"]) == 2
    # evaluate_policies estimates the assistant's exploration shares beside the slate policies
    from ml.tasks.policies import evaluate_policies

    ev = evaluate_policies(run_id="eval-assistant", candidates=CANDIDATES, n_bootstrap=50, propensity_draws=16)
    # the answer explored its last slot with propensity 1 and that slot was not clicked: a share s
    # weighs it s (share 0 weighs it 0 and is not estimable from this log)
    assert {a["share"]: (a["estimate"], a["n"]) for a in ev["assistant"]} == {
        s: (0.0, 1) for s in (0.05, 0.1, 0.2, 0.5)
    }
    rows = wh.query(
        f"select policy, estimator, is_current from {C.POLICY_ESTIMATES} "
        "where run_id = 'eval-assistant' and policy like 'assistant%' order by policy"
    )
    assert rows["estimator"].eq("snips").all() and len(rows) == 4
    assert rows.loc[rows["is_current"].astype(bool), "policy"].tolist() == ["assistant(share=0.1)"]


def test_the_policy_learns_from_the_policy_reward_setting(loop, monkeypatch):
    from ml.explore.candidates import item_arm_tags
    from ml.explore.feedback import FeedbackStats
    from ml.explore.reward import Learning
    from ml.explore.store import read_item_features
    from ml.tasks.publishing import publish_recommendations

    wh = loop["wh"]
    mart = wh.query(f"select * from {C.BANDIT_FEEDBACK}")
    assert mart[C.PURCHASED].sum() > 0 and (mart[C.PURCHASED] < mart[C.CLICKED]).any()
    monkeypatch.setenv("INTERESTFLOW_POLICY_REWARD", "purchase")
    out = publish_recommendations(run_id="pub-purchase", policy="thompson", propensity_draws=16)
    assert out["reward"] == "purchase"
    contexts = wh.query(f"select context from {C.SLATE_CONTEXTS} where run_id = 'pub-purchase'")["context"]
    # feedback rows without a logged tag take the item's category tag, as serving reads them
    items = item_arm_tags(read_item_features(wh))
    item_tags = dict(zip(items["item_id"], items["tag"], strict=True))
    by_purchase = FeedbackStats.from_feedback(mart, item_tags, Learning("purchase")).user_tag
    by_click = FeedbackStats.from_feedback(mart, item_tags).user_tag
    compared = differ = 0
    for ctx in map(json.loads, contexts):
        for tag, exam, successes in zip(ctx["tags"], ctx["impressions"], ctx["clicks"], strict=True):
            if (ctx["user_id"], tag) in by_purchase:
                want = by_purchase[(ctx["user_id"], tag)]
                assert (exam, successes) == pytest.approx(want, abs=1e-5)
                compared += 1
                differ += want[1] != by_click[(ctx["user_id"], tag)][1]
    assert compared and differ  # the arms counted purchases, not clicks
    # an unknown reward is refused before anything is written
    monkeypatch.setenv("INTERESTFLOW_POLICY_REWARD", "sales")
    with pytest.raises(Exception, match="INTERESTFLOW_POLICY_REWARD"):
        publish_recommendations(run_id="pub-bad", policy="thompson")
