"""The simulator: its click model and oracle, and a short run of the feedback loop."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.simulate.environment import ShopEnvironment, position_bias
from ml.simulate.runner import SimulationSettings, build_world, run_policy

pytestmark = pytest.mark.unit

SUMMARY_KEYS = {
    "cumulative_clicks",
    "cumulative_purchases",
    "cumulative_revenue",
    "regret",
    "interests_discovered",
    "coverage",
    "ctr_first_3_days",
}


def _env() -> ShopEnvironment:
    truth = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u1"],
            "tag": ["cat:a", "cat:b", "style:eco"],
            "status": ["active", "dormant", "active"],
            "weight_start": [0.8, 0.2, 1.0],
            "weight_end": [0.2, 0.8, 1.0],
        }
    )
    item_tags = pd.DataFrame(
        {
            "item_id": ["i1", "i1", "i2", "i2", "i3", "i3"],
            "tag": ["cat:a", "style:eco", "cat:b", "style:old", "cat:c", "style:eco"],
        }
    )
    return ShopEnvironment(truth, item_tags, ["u1"], days=10, k=3)


def test_click_model_interests_dormancy_drift_style_and_fatigue():
    env = _env()
    p0 = env.click_probability(0)[0]
    i1, i2, i3 = (env.item_index[i] for i in ("i1", "i2", "i3"))
    assert p0[i3] == pytest.approx(0.02 * 1.3)  # not an interest, but the user's style
    assert p0[i2] > 0.1  # dormant interests are clicked when shown
    assert p0[i1] > p0[i2]  # a is the stronger interest at the start ...
    p9 = env.click_probability(9)[0]
    assert p9[i2] > p9[i1] / 1.3  # ... and b takes over by the end (drift)
    slates = pd.DataFrame({"user_id": ["u1"], "rank": [1], "item_id": ["i1"], "recommendation_id": ["r1"]})
    env.respond(slates, 0, pd.Timestamp("2026-11-01"), np.random.default_rng(0))
    assert env.click_probability(0)[0][i1] == pytest.approx(p0[i1] * 0.7)  # fatigue


def test_oracle_is_an_upper_bound_on_expected_clicks():
    env = _env()
    best = env.oracle_expected_clicks(0)[0]
    p = env.click_probability(0)[0]
    for perm in ([0, 1, 2], [2, 1, 0], [1, 0, 2]):
        assert p[perm] @ position_bias(3) <= best + 1e-12


@pytest.fixture(scope="module")
def world():
    return build_world(SimulationSettings(size="tiny", users=40, days=3, n_draws=8))


def test_a_short_run_reports_every_metric(world):
    runs = {n: run_policy(world, n) for n in ("greedy", "slot_allocator")}
    for r in runs.values():
        assert set(r.summary) == SUMMARY_KEYS
        s = r.summary
        assert s["cumulative_clicks"] >= s["cumulative_purchases"] >= 0
        # every purchase is one unit at its catalogue price
        bought = r.feedback[(r.feedback["purchased"] == 1) & r.feedback["logged_run_id"].notna()]
        prices = world.env.prices.reindex(bought["item_id"]).to_numpy()
        assert s["cumulative_revenue"] == pytest.approx(prices.sum(), abs=0.01)
        assert (s["cumulative_revenue"] > 0) == (s["cumulative_purchases"] > 0)
        assert 0 <= s["interests_discovered"] <= 1 and 0 < s["coverage"] <= 1
        assert s["regret"] >= 0  # per day, no slate beats the oracle in expectation
        assert len(r.daily) == 3 and (r.daily["impressions"] == 40 * 10).all()
        fb = r.feedback[r.feedback["logged_run_id"].notna()]
        assert fb["has_propensity"].all() and len(fb) == 3 * 40 * 10
    assert runs["greedy"].daily["exploration_share"].eq(0).all()
    assert runs["slot_allocator"].daily["exploration_share"].gt(0).all()


def test_runs_are_reproducible(world):
    a = run_policy(world, "thompson")
    b = run_policy(world, "thompson")
    assert a.summary == b.summary


def test_the_policies_learn_from_the_chosen_reward(world):
    import dataclasses

    from ml.explore.feedback import FeedbackStats
    from ml.explore.reward import Learning, revenue_scale

    runs = {}
    for reward in ("click", "purchase", "revenue"):
        w = dataclasses.replace(world, settings=dataclasses.replace(world.settings, reward=reward))
        runs[reward] = run_policy(w, "thompson")
    # the same users and seeds: what differs is what the arms counted as a success, so the slates
    shown = {r: run.feedback[run.feedback["logged_run_id"].notna()] for r, run in runs.items()}
    assert not shown["click"]["item_id"].equals(shown["purchase"]["item_id"].reset_index(drop=True))
    assert (
        not shown["purchase"]["item_id"]
        .reset_index(drop=True)
        .equals(shown["revenue"]["item_id"].reset_index(drop=True))
    )
    # and those successes are the reward's: purchases for purchase, scaled revenue for revenue
    fb = runs["revenue"].feedback
    stats = FeedbackStats.from_feedback(
        fb,
        dict(zip(world.items["item_id"], world.items["tag"], strict=True)),
        Learning("revenue", revenue_scale(world.env.prices)),
    )
    successes = sum(v[1] for v in stats.user_tag.values())
    assert (
        0
        < successes
        < sum(
            v[1]
            for v in FeedbackStats.from_feedback(
                fb, dict(zip(world.items["item_id"], world.items["tag"], strict=True))
            ).user_tag.values()
        )
    )
