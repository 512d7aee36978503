"""The reward a policy is measured by: click, attributed purchase or revenue."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.explore import columns as C
from ml.explore.defaults import POLICY_REWARDS
from ml.explore.reward import REWARD_COLUMNS, reward_column, with_reward
from ml.ope.reward_model import fit_reward_model

pytestmark = pytest.mark.unit


def test_every_reward_the_dag_offers_reads_a_feedback_column():
    assert tuple(REWARD_COLUMNS) == POLICY_REWARDS
    assert set(REWARD_COLUMNS.values()) <= set(C.FEEDBACK_COLUMNS)
    with pytest.raises(ValueError, match="unknown reward 'clicks'; choose one of click, purchase, revenue"):
        reward_column("clicks")


def test_with_reward_copies_the_chosen_outcome_as_float():
    fb = pd.DataFrame({C.CLICKED: [1, 0, 1], C.PURCHASED: [1, 0, 0], C.REVENUE: [19.5, None, 0.0]})
    assert with_reward(fb, "click")[C.REWARD].tolist() == [1.0, 0.0, 1.0]
    assert with_reward(fb, "purchase")[C.REWARD].tolist() == [1.0, 0.0, 0.0]
    assert with_reward(fb, "revenue")[C.REWARD].tolist() == [19.5, 0.0, 0.0]
    assert C.REWARD not in fb  # the caller's frame is left alone
    with pytest.raises(ValueError, match="no 'revenue' column"):
        with_reward(fb.drop(columns=C.REVENUE), "revenue")


def test_the_reward_model_is_the_logistic_model_for_clicks_and_scales_it_for_revenue():
    rng = np.random.default_rng(0)
    n = 20_000
    X = rng.normal(size=(n, 3))
    p = 1 / (1 + np.exp(-(X[:, 0] - 2.0)))
    bought = rng.random(n) < p
    amount = np.where(bought, rng.uniform(20, 60, n), 0.0)  # mean 40 per purchase
    binary = fit_reward_model(X, bought.astype(float))
    assert binary.value == 1.0
    np.testing.assert_allclose(binary.expected(X), binary.classifier.predict_proba(X)[:, 1])
    revenue = fit_reward_model(X, amount)
    assert revenue.value == pytest.approx(40.0, rel=0.05)
    np.testing.assert_allclose(revenue.expected(X), revenue.value * binary.expected(X), rtol=1e-6)
    # it predicts the mean revenue per round, and ranks rounds by purchase probability
    assert revenue.expected(X).mean() == pytest.approx(amount.mean(), rel=0.05)
    assert np.corrcoef(revenue.expected(X), p)[0, 1] > 0.95


def test_what_policies_learn_from_stays_in_zero_one():
    from ml.explore.reward import Learning, revenue_scale

    fb = pd.DataFrame({C.CLICKED: [1, 0, 1], C.PURCHASED: [1, 1, 0], C.REVENUE: [50.0, 400.0, 0.0]})
    # revenue per sale over the catalogue's 99th price percentile, capped at 1
    assert Learning("revenue", 100.0).apply(fb)[C.REWARD].tolist() == [0.5, 1.0, 0.0]
    assert Learning("purchase", 100.0).apply(fb)[C.REWARD].tolist() == [1.0, 1.0, 0.0]  # the scale is revenue's
    assert Learning().apply(fb)[C.REWARD].tolist() == [1.0, 0.0, 1.0]
    prices = np.r_[np.arange(1.0, 101.0), [np.nan, -5.0, 0.0]]
    assert revenue_scale(prices) == pytest.approx(np.quantile(np.arange(1.0, 101.0), 0.99))
    assert revenue_scale([]) == 1.0
    with pytest.raises(ValueError, match="unknown reward 'sales'"):
        Learning("sales")
    with pytest.raises(ValueError, match="revenue scale must be > 0"):
        Learning("revenue", 0.0)


def test_the_arms_count_the_reward_the_policies_learn_from():
    from ml.explore.feedback import FeedbackStats
    from ml.explore.reward import Learning

    fb = pd.DataFrame(
        {
            C.POSITION: [1, 1, 1, 1],
            "user_id": ["u1", "u1", "u1", "u2"],
            "item_id": ["a", "b", "c", "a"],
            C.TAG: ["t1", "t1", "t2", "t1"],
            C.CLICKED: [1, 1, 1, 0],
            C.PURCHASED: [0, 1, 0, 0],
            C.REVENUE: [0.0, 80.0, 0.0, 0.0],
        }
    )
    clicks = FeedbackStats.from_feedback(fb)
    purchases = FeedbackStats.from_feedback(fb, learning=Learning("purchase"))
    revenue = FeedbackStats.from_feedback(fb, learning=Learning("revenue", 160.0))
    assert clicks.user_tag[("u1", "t1")] == (2.0, 2.0) and clicks.user_tag[("u1", "t2")] == (1.0, 1.0)
    assert purchases.user_tag[("u1", "t1")] == (2.0, 1.0) and purchases.user_tag[("u1", "t2")] == (1.0, 0.0)
    assert revenue.user_tag[("u1", "t1")] == (2.0, 0.5)
    assert purchases.overall_ctr == pytest.approx((1 + 1) / (4 + 2))
    # which items the user clicked stays clicks whatever the reward
    assert purchases.user_item == clicks.user_item


def test_a_linear_policy_fits_the_reward_it_learns_from():
    import json

    from ml.explore.context import FEATURES
    from ml.explore.policies import make_policy
    from ml.explore.reward import Learning

    rng = np.random.default_rng(3)
    n = 400
    X = rng.uniform(size=(n, len(FEATURES)))
    clicked = (rng.random(n) < 0.5).astype(int)
    purchased = clicked * (X[:, 1] > 0.5)  # only arms with a high second feature sell
    fb = pd.DataFrame(
        {
            C.ARM_FEATURES: [json.dumps(r.tolist()) for r in X],
            C.POSITION: 1,
            C.CLICKED: clicked,
            C.PURCHASED: purchased,
            C.REVENUE: purchased * 30.0,
        }
    )
    on_clicks = make_policy("linucb").fit(fb)
    on_purchases = make_policy("linucb").fit(fb, Learning("purchase"))
    on_revenue = make_policy("linucb").fit(fb, Learning("revenue", 60.0))
    assert not np.allclose(on_clicks.theta_, on_purchases.theta_)
    assert on_purchases.theta_[1] > on_clicks.theta_[1]  # the feature that sells gains weight
    # revenue of 30 at a scale of 60 is half a purchase: between no signal and the purchases' fit
    assert on_clicks.theta_[1] < on_revenue.theta_[1] < on_purchases.theta_[1]


def test_the_catalogues_prices_are_read_only_for_the_revenue_reward():
    from ml.explore.reward import Learning

    def prices():
        asked.append(1)
        return np.arange(1.0, 101.0)

    asked: list[int] = []
    assert Learning.of("click", prices) == Learning("click", 1.0)
    assert Learning.of("purchase", prices) == Learning("purchase", 1.0)
    assert not asked
    assert Learning.of("revenue", prices).scale == pytest.approx(np.quantile(np.arange(1.0, 101.0), 0.99))
    assert asked == [1]
