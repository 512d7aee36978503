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
