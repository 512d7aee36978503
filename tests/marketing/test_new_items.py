import numpy as np
import pandas as pd
import pytest

from ml.marketing.new_items import NewItemBudget, allocate, graduated, impressions_to_judge, wilson_interval

pytestmark = pytest.mark.unit


def _data(n_users=3000):
    rng = np.random.default_rng(0)
    tags = ["cat:a", "cat:b", "cat:c"]
    user_tags = pd.DataFrame({"user_id": [f"u{i}" for i in range(n_users)], "tag": rng.choice(tags, n_users)})
    item_tags = pd.DataFrame({"item_id": ["n1", "n2", "n3", "old"], "tag": ["cat:a", "cat:a", "cat:b", "cat:c"]})
    return user_tags, item_tags


def test_budget_bounds_expected_and_realised_exposure():
    user_tags, item_tags = _data()
    budget = NewItemBudget(slot_probability=0.5, daily_cap=100)
    days = [allocate(user_tags, item_tags, ["n1", "n2", "n3"], budget, seed=s) for s in range(20)]
    per_item = pd.concat(days).groupby("item_id").size() / 20
    assert per_item.max() <= 100 * 1.1  # expectation capped at 100; 20-day mean within noise
    assert set(per_item.index) == {"n1", "n2", "n3"}  # every new item with an audience is shown
    day = days[0]
    assert day["matched"].all()  # targeted: only users whose tags match
    assert day["user_id"].is_unique  # one new-item slot per user
    assert ((day["propensity"] > 0) & (day["propensity"] <= 1)).all()


def test_propensities_are_exact_in_expectation():
    user_tags, item_tags = _data(600)
    budget = NewItemBudget(slot_probability=0.4, daily_cap=50)
    runs = [allocate(user_tags, item_tags, ["n1", "n3"], budget, seed=s) for s in range(300)]
    allc = pd.concat(runs)
    freq = allc.groupby(["user_id", "item_id"]).size() / 300
    prop = allc.groupby(["user_id", "item_id"])["propensity"].first()
    # the frequencies scatter around the propensities by sampling noise alone: the mean absolute
    # gap of a binomial frequency over 300 days is about sqrt(2/pi) * sd
    noise = float((np.sqrt(2 / np.pi) * np.sqrt(prop * (1 - prop) / 300)).mean())
    assert float((freq - prop).abs().mean()) < 1.3 * noise
    assert freq.mean() == pytest.approx(prop.mean(), rel=0.1)


def test_untargeted_reaches_non_matching_users():
    user_tags, item_tags = _data()
    out = allocate(user_tags, item_tags, ["n1"], NewItemBudget(targeted=False, daily_cap=10_000), seed=1)
    assert not out["matched"].all()


def test_graduation_and_wilson_limits():
    lo, hi = wilson_interval(0, 0)
    assert (lo, hi) == (0.0, 1.0)
    lo, hi = wilson_interval(50, 100)
    assert lo < 0.5 < hi and hi - lo < 0.2
    b = NewItemBudget(ci_width=0.5, relative=True)
    assert not graduated(np.array([1]), np.array([10]), b)[0]
    assert graduated(np.array([200]), np.array([1000]), b)[0]
    absolute = NewItemBudget(ci_width=0.05, relative=False)
    assert graduated(np.array([100]), np.array([5000]), absolute)[0]
    # a higher true CTR needs fewer impressions to be judged within a relative width
    assert impressions_to_judge(0.2, b) < impressions_to_judge(0.02, b)


def test_the_draw_does_not_depend_on_the_order_the_inputs_arrive_in():
    """Warehouse scans come back in any order: the same seed must give the same slots."""
    user_tags, item_tags = _data(500)
    budget = NewItemBudget(slot_probability=0.5)
    first = allocate(user_tags, item_tags, ["n1", "n2", "n3"], budget, seed=3)
    shuffled = allocate(
        user_tags.sample(frac=1.0, random_state=1),
        item_tags.sample(frac=1.0, random_state=2),
        ["n3", "n1", "n2"],
        budget,
        seed=3,
    )
    key = ["user_id", "item_id"]
    assert len(first) > 0
    pd.testing.assert_frame_equal(
        first.sort_values(key).reset_index(drop=True), shuffled.sort_values(key).reset_index(drop=True)
    )
