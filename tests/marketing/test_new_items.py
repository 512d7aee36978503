import numpy as np
import pandas as pd
import pytest

from ml.marketing.new_items import (
    NewItemBudget,
    allocate,
    graduated,
    impressions_to_judge,
    plan_exposure,
    wilson_interval,
)

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


def test_shards_each_spend_their_share_of_an_items_cap():
    from ml.publish.shards import shard_of

    user_tags, item_tags = _data()
    # ~2,000 users like cat:a (two new items: ~250 expected each), ~1,000 cat:b (one: ~500)
    budget = NewItemBudget(slot_probability=0.5, daily_cap=300)
    new = ["n1", "n2", "n3"]
    whole = plan_exposure(user_tags, item_tags, new, budget).frame().groupby("item_id")["propensity"].sum()
    assert whole["n3"] == pytest.approx(300) and whole["n1"] < 300  # n3 is thinned to its cap
    shard = shard_of(user_tags["user_id"], 3)
    parts = [plan_exposure(user_tags[shard == i], item_tags, new, budget, cap_share=1 / 3).frame() for i in range(3)]
    # every shard stays under a third of each item's cap, so the shards together stay under it
    for part in parts:
        assert part.groupby("item_id")["propensity"].sum().max() <= 100 + 1e-9
    expected = pd.concat(parts).groupby("item_id")["propensity"].sum()
    assert expected["n3"] == pytest.approx(300)
    # an item under its cap is shown as often as without shards (no thinning either way)
    assert expected["n1"] == pytest.approx(whole["n1"])


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


def test_a_bought_new_item_is_never_placed_and_the_rest_keep_exact_propensities():
    from ml.marketing.new_items import place_new_items

    user_tags, item_tags = _data(400)
    budget = NewItemBudget(slot_probability=1.0, daily_cap=10_000)
    a_users = user_tags.loc[user_tags["tag"] == "cat:a", "user_id"]
    bought = pd.DataFrame({"user_id": a_users.iloc[:50], "item_id": "n1"})
    plan = plan_exposure(user_tags, item_tags, ["n1", "n2"], budget, excluded=bought).frame()
    pairs = set(zip(plan["user_id"], plan["item_id"], strict=True))
    assert not any((u, "n1") in pairs for u in bought["user_id"])
    # those users have one new item left to draw: it gets their whole slot probability
    only_n2 = plan[plan["user_id"].isin(set(bought["user_id"]))]
    assert (only_n2["item_id"] == "n2").all() and np.allclose(only_n2["p_pick"], 1.0)
    others = plan[plan["user_id"].isin(set(a_users.iloc[50:]))]
    assert np.allclose(others["p_pick"], 0.5)
    # in the slates: never a bought item, for every seed
    slates = pd.DataFrame(
        {
            "user_id": np.repeat(a_users.to_numpy(), 2),
            "rank": np.tile([1, 2], len(a_users)),
            "item_id": "old",
            "score": 1.0,
            "propensity": 1.0,
            "propensity_se": 0.0,
            "is_exploration": False,
            "reason_tag": "cat:c",
            "reason": "",
        }
    )
    for seed in range(5):
        out = place_new_items(slates, user_tags, item_tags, ["n1", "n2"], budget, seed, excluded=bought)
        placed = set(zip(out.loc[out["new_item"], "user_id"], out.loc[out["new_item"], "item_id"], strict=True))
        assert placed and not any((u, "n1") in placed for u in bought["user_id"])


def _pairs_one_by_one(user_tags, item_tags, new_items, budget, excluded, cap_share):
    """The plan's pairs and numbers written out pair by pair (the reference the counting
    per user and per item is checked against)."""
    tag_of = item_tags[item_tags["item_id"].isin(new_items)].drop_duplicates("item_id").set_index("item_id")["tag"]
    bought = set(zip(excluded["user_id"], excluded["item_id"], strict=True))
    rows = []
    for user, tags in user_tags.groupby("user_id")["tag"]:
        for item in sorted(set(new_items)):
            matched = tag_of.get(item) in set(tags)
            if (matched or not budget.targeted) and (user, item) not in bought:
                rows.append((user, item, matched))
    pairs = pd.DataFrame(rows, columns=["user_id", "item_id", "matched"])
    pairs["p_pick"] = budget.slot_probability / pairs.groupby("user_id")["item_id"].transform("size")
    expected = pairs.groupby("item_id")["p_pick"].sum()
    pairs["accept"] = np.minimum(1.0, budget.daily_cap * cap_share / pairs["item_id"].map(expected))
    pairs["propensity"] = pairs["p_pick"] * pairs["accept"]
    return pairs


@pytest.mark.parametrize("targeted", [True, False])
def test_the_plan_counted_per_user_and_item_equals_its_pairs_listed_one_by_one(targeted):
    rng = np.random.default_rng(5)
    tags = ["cat:a", "cat:b", "cat:c", "cat:d"]
    users = [f"u{i:03d}" for i in range(200)]
    user_tags = pd.DataFrame({"user_id": rng.choice(users, 500), "tag": rng.choice(tags, 500)})  # repeats too
    items = [f"n{i}" for i in range(12)]
    item_tags = pd.DataFrame({"item_id": [*items, "n0"], "tag": [*rng.choice(tags[:3], 12), "cat:d"]})  # n0 twice
    new = [*items[:10], "n_untagged"]
    excluded = pd.DataFrame({"user_id": rng.choice(users, 80), "item_id": rng.choice(items, 80)})
    budget = NewItemBudget(slot_probability=0.5, daily_cap=15, targeted=targeted)

    plan = plan_exposure(user_tags.sample(frac=1.0, random_state=3), item_tags, new, budget, excluded, 0.5)
    want = _pairs_one_by_one(user_tags, item_tags, new, budget, excluded, 0.5)
    got = plan.frame()
    assert len(got) == len(want) > 0
    pd.testing.assert_frame_equal(
        got[["user_id", "item_id", "matched"]], want[["user_id", "item_id", "matched"]], check_dtype=False
    )
    for column in ("p_pick", "accept", "propensity"):
        assert np.allclose(got[column], want[column], rtol=1e-12), column
    assert (want["accept"] < 1).any()  # the cap binds for some item
    rho = want.groupby("user_id")["propensity"].sum()
    assert np.allclose(pd.Series(plan.rho, index=plan.users).reindex(rho.index), rho, rtol=1e-12)
    # the users of the plan are exactly those with a pair left
    assert sorted(map(str, plan.users)) == sorted(rho.index)
