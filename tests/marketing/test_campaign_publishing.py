"""Campaign windows and the new-item slot applied to real policy slates (build_slates)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.explore.context import FEATURES, SlateContext
from ml.explore.policies import make_policy
from ml.explore.slate import build_slates
from ml.marketing.campaigns import (
    HOLDOUT,
    TREATMENT,
    Campaign,
    active_campaigns,
    arm,
    campaign_slates,
)
from ml.marketing.new_items import NewItemBudget, allocate, place_new_items, plan_exposure
from tests.marketing.reference_campaigns import per_user_campaign_slates, rerank_slate

pytestmark = pytest.mark.unit

K, DAY, DRAWS = 10, "2026-10-20", 64
TAGS = ["cat:home_lamps", "cat:home_vases", "cat:sports_tents", "cat:sports_backpacks"]


def _context(user: str, seed: int) -> SlateContext:
    """Four tags with six items each; tents and backpacks are candidate tags (exploration arms)."""
    rng = np.random.default_rng(seed)
    T = len(TAGS)
    known = np.array([True, True, False, False])
    feats = np.column_stack([np.ones(T), known, rng.random((T, len(FEATURES) - 2))])
    items = [np.array([f"{t.split('_')[-1]}{m}" for m in range(6)], dtype=object) for t in TAGS]
    return SlateContext(
        user_id=user,
        tags=TAGS,
        known=known,
        prior_mean=np.array([0.3, 0.2, 0.05, 0.04]),
        prior_strength=np.array([20.0, 20.0, 2.0, 2.0]),
        impressions=np.zeros(T),
        clicks=np.zeros(T),
        features=feats,
        items=items,
        item_scores=[np.sort(rng.uniform(0.2, 1.0, 6))[::-1] for _ in TAGS],
        n_sessions=5,
    )


CONTEXTS = [_context(f"u{i:03d}", i) for i in range(120)]
ITEM_TAGS = pd.DataFrame(
    [(str(i), t) for c in CONTEXTS[:1] for t, its in zip(c.tags, c.items, strict=True) for i in its],
    columns=["item_id", "tag"],
)
SALE = Campaign(
    name="tent_sale",
    start="2026-10-17",
    end="2026-10-31",
    boost_tags=["cat:sports_tents"],
    boost=5.0,
    max_share=0.3,
    holdout_share=0.3,
)


def _slates(policy_name: str, **params) -> tuple[object, pd.DataFrame]:
    pol = make_policy(policy_name, **params)
    return pol, build_slates(pol, CONTEXTS, K, DAY, "run-1", n_draws=DRAWS)


def _apply(pol, df, campaigns):
    return campaign_slates(df, pol, CONTEXTS, K, DAY, DRAWS, campaigns, ITEM_TAGS)


@pytest.mark.parametrize("policy", [("greedy", {}), ("slot_allocator", {"budget": {"default": 0.3}})])
def test_window_on_promotes_within_the_cap_and_keeps_exploration_and_propensities_valid(policy):
    pol, df = _slates(policy[0], **policy[1])
    out = _apply(pol, df, active_campaigns({"s": SALE}, pd.Timestamp("2026-10-20")))
    assert len(out) == len(df) and (out.groupby("user_id")["item_id"].nunique() == K).all()
    arms = dict(zip(out["user_id"].unique(), arm(out["user_id"].unique(), SALE), strict=True))
    treated = out[out["user_id"].map(arms) == TREATMENT]
    promoted = treated.groupby("user_id")["campaign"].apply(lambda s: s.notna().sum())
    assert promoted.max() == 3 and (promoted > 0).mean() > 0.9  # floor(0.3 * 10), boost 5x would take more
    tents = set(ITEM_TAGS.loc[ITEM_TAGS["tag"] == "cat:sports_tents", "item_id"])
    assert treated.loc[treated["campaign"].notna(), "item_id"].isin(tents).all()
    # exploration slots stay where the policy put them
    before = df.set_index(["user_id", "rank"])["is_exploration"]
    after = out.set_index(["user_id", "rank"])["is_exploration"]
    assert after.reindex(before.index).equals(before)
    assert out["propensity"].between(0, 1, inclusive="right").all()
    if pol.deterministic:
        assert (out["propensity"] == 1.0).all()


def test_holdout_users_see_exactly_the_plain_slate():
    pol, df = _slates("slot_allocator", budget={"default": 0.3})
    out = _apply(pol, df, [SALE])
    arms = pd.Series(arm(out["user_id"].unique(), SALE), index=out["user_id"].unique())
    held = arms.index[arms == HOLDOUT]
    assert 0 < len(held) < len(arms)
    cols = ["user_id", "rank", "item_id", "score", "propensity", "propensity_se", "is_exploration"]
    a = df[df["user_id"].isin(held)][cols].reset_index(drop=True)
    b = out[out["user_id"].isin(held)][cols].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    assert out.loc[out["user_id"].isin(held), "campaign"].isna().all()


def test_outside_the_window_rows_are_unchanged():
    pol, df = _slates("thompson")
    for at in ("2026-10-16T23:59:59", "2026-10-31T00:00:00", "2027-01-01"):
        live = active_campaigns({"s": SALE}, pd.Timestamp(at))
        assert live == []
        out = _apply(pol, df, live)
        pd.testing.assert_frame_equal(out.drop(columns="campaign"), df)
        assert out["campaign"].isna().all()


def test_stochastic_propensities_are_the_rerank_draw_frequencies():
    pol, df = _slates("thompson")
    out = _apply(pol, df, [SALE])
    # propensities of a stochastic policy differ from the plain ones for some treated rows,
    # and each user's shown slate is one of the re-ranked draws (propensity >= 1 / draws)
    assert (out["propensity"] >= 1.0 / DRAWS - 1e-12).all()
    merged = out.merge(df, on=["user_id", "rank"], suffixes=("", "_plain"))
    treated = merged["user_id"].map(dict(zip(out["user_id"], arm(out["user_id"], SALE), strict=True))) == TREATMENT
    assert (merged.loc[treated, "propensity"] != merged.loc[treated, "propensity_plain"]).any()
    # reproducible: the same inputs give the same rows
    pd.testing.assert_frame_equal(out, _apply(pol, df, [SALE]))


def test_arms_worked_out_ahead_are_used_only_for_the_same_users_in_the_same_order():
    """``user_arms`` (the arms publishing hashes on a second thread) gives the same rows as
    hashing here; arms given for the contexts' users are what the re-rank follows, and arms
    given for the users in another order are not used."""
    pol, df = _slates("greedy")
    users = np.array([c.user_id for c in CONTEXTS], dtype=object)
    plain = _apply(pol, df, [SALE])
    ahead = campaign_slates(
        df, pol, CONTEXTS, K, DAY, DRAWS, [SALE], ITEM_TAGS, user_arms={SALE.name: (users, arm(users, SALE))}
    )
    pd.testing.assert_frame_equal(ahead, plain)
    # everyone held out: the given arms win, so nothing is promoted
    held = np.full(len(users), HOLDOUT, dtype=object)
    none = campaign_slates(df, pol, CONTEXTS, K, DAY, DRAWS, [SALE], ITEM_TAGS, user_arms={SALE.name: (users, held)})
    assert none["campaign"].isna().all() and plain["campaign"].notna().any()
    # the same arms for the users in reverse order are not the contexts' users: hashed here
    rev = campaign_slates(
        df, pol, CONTEXTS, K, DAY, DRAWS, [SALE], ITEM_TAGS, user_arms={SALE.name: (users[::-1], held)}
    )
    pd.testing.assert_frame_equal(rev, plain)


def test_holdout_share_param_overrides_the_campaign():
    live = active_campaigns({"s": SALE}, pd.Timestamp("2026-10-20"), holdout_share=0.0)
    assert live[0].holdout_share == 0.0 and SALE.holdout_share == 0.3


def test_rerank_slate_keeps_fixed_slots_and_respects_the_cap():
    items = np.array([0, 1, 2, 3, 4])
    scores = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    fixed = np.array([False, True, False, False, False])
    out, vals, touched = rerank_slate(items, scores, fixed, boosted={3, 4, 9}, extra={9: 1.5}, boost=10.0, cap=2)
    assert out[1] == 1 and not touched[1]  # the exploration slot is untouched
    assert touched.sum() == 2 and set(out[touched]) == {3, 9}  # the two best boosted by boosted value
    assert sorted(out.tolist()) == [0, 1, 2, 3, 9]  # 4 (boosted beyond the cap) fell out for 9
    assert vals[~fixed].tolist() == sorted(vals[~fixed].tolist(), reverse=True)


# ---- new items through the exploration slot ----------------------------------------------------


def _user_tags() -> pd.DataFrame:
    return pd.DataFrame(
        [(c.user_id, t) for c in CONTEXTS for t, kn in zip(c.tags, c.known, strict=True) if kn],
        columns=["user_id", "tag"],
    )


NEW_TAGS = pd.DataFrame({"item_id": ["new1", "new2", "new3"], "tag": ["cat:home_lamps", "cat:home_lamps", "cat:x"]})


def test_new_items_take_the_last_slot_within_the_budget_with_exact_propensities():
    _, df = _slates("greedy")
    budget = NewItemBudget(slot_probability=0.5, daily_cap=20)
    days = [place_new_items(df, _user_tags(), NEW_TAGS, ["new1", "new2", "new3"], budget, seed=s) for s in range(40)]
    plan = plan_exposure(_user_tags(), NEW_TAGS, ["new1", "new2", "new3"], budget).frame()
    for out in days[:3]:
        new = out[out["new_item"]]
        assert (new["rank"] == K).all() and new["is_exploration"].all()
        assert set(new["item_id"]) <= {"new1", "new2"}  # no user matches cat:x
        exp = plan.set_index(["user_id", "item_id"])["propensity"]
        got = new.set_index(["user_id", "item_id"])["propensity"]
        assert np.allclose(got.to_numpy(), exp.reindex(got.index).to_numpy())
        # the policy's last item, when kept, is scaled by 1 - rho_u
        rho = plan.groupby("user_id")["propensity"].sum()
        kept = out[(out["rank"] == K) & ~out["new_item"]]
        assert np.allclose(kept["propensity"], 1.0 - kept["user_id"].map(rho).fillna(0.0))
        assert out.groupby("user_id")["item_id"].nunique().eq(K).all()
        assert len(out) == len(df) and out.loc[out["rank"] < K].equals(days[0].loc[days[0]["rank"] < K])
    per_day = pd.concat([d[d["new_item"]] for d in days]).groupby("item_id").size() / len(days)
    assert per_day.max() <= 20 * 1.15  # daily cap in expectation (40 days of noise)
    assert pd.concat(days).groupby(["user_id"])["new_item"].sum().max() <= len(days)  # one per user and day


def test_no_budget_means_no_change():
    _, df = _slates("greedy")
    out = place_new_items(df, _user_tags(), NEW_TAGS, [], NewItemBudget(), seed=1)
    pd.testing.assert_frame_equal(out.drop(columns="new_item"), df)
    assert not out["new_item"].any()


def test_a_day_on_which_no_user_draws_a_new_item_changes_only_the_last_slots_propensity():
    _, df = _slates("greedy")
    budget = NewItemBudget(slot_probability=0.001, daily_cap=20)  # 120 users: most days nobody draws one
    plan = plan_exposure(_user_tags(), NEW_TAGS, ["new1", "new2", "new3"], budget).frame()
    assert not plan.empty
    # a seed on which no user of the plan gets a slot (the draws are the budget's, not ours)
    seed = next(s for s in range(1000) if allocate(_user_tags(), NEW_TAGS, ["new1", "new2", "new3"], budget, s).empty)
    out = place_new_items(df, _user_tags(), NEW_TAGS, ["new1", "new2", "new3"], budget, seed=seed)
    assert not out["new_item"].any() and list(out["item_id"]) == list(df["item_id"])
    rho = plan.groupby("user_id")["propensity"].sum()
    last = out[out["rank"] == K]
    assert np.allclose(
        last["propensity"], df.loc[last.index, "propensity"] * (1.0 - last["user_id"].map(rho).fillna(0.0))
    )


def test_campaign_rows_are_the_same_with_the_publish_draws_reused():
    pol = make_policy("greedy")
    cache: dict = {}
    df = build_slates(pol, CONTEXTS, K, DAY, "run-1", n_draws=DRAWS, draws_cache=cache)
    plain = campaign_slates(df, pol, CONTEXTS, K, DAY, DRAWS, [SALE], ITEM_TAGS)
    reused = campaign_slates(df, pol, CONTEXTS, K, DAY, DRAWS, [SALE], ITEM_TAGS, draws_cache=cache)
    assert plain["campaign"].notna().any()
    pd.testing.assert_frame_equal(plain, reused)


@pytest.mark.parametrize(
    ("policy", "params"),
    [
        ("greedy", {}),
        ("ucb1", {}),
        ("linucb", {}),
        ("thompson", {}),
        ("lin_thompson", {}),
        ("epsilon_greedy", {"epsilon": 0.3}),
        ("slot_allocator", {"budget": {"default": 0.3}}),
    ],
)
def test_batched_rerank_equals_the_per_user_rerank(policy, params, monkeypatch):
    """``campaign_slates`` re-ranks all treated users' draws at once; the reference re-ranks
    each user's draws one by one with ``rerank_slate``. Two overlapping campaigns (applied in
    order, the second re-ranking the first one's result), exploration slots, Monte Carlo
    propensities and boosted items the plain slate did not show must give the very same rows,
    with the publish draws reused (one-slate policies) or drawn again."""

    pol = make_policy(policy, **params)
    second = Campaign(
        name="backpack_week",
        start="2026-10-18",
        end="2026-10-25",
        boost_tags=["cat:sports_backpacks"],
        boost_items=["tents4", "lamps5"],
        boost=0.5,
        max_share=0.2,
        holdout_share=0.2,
    )
    cache: dict = {}
    df = build_slates(pol, CONTEXTS, K, DAY, "run-1", n_draws=DRAWS, draws_cache=cache)
    reference = per_user_campaign_slates(df, pol, CONTEXTS, K, DAY, DRAWS, [SALE, second], ITEM_TAGS)
    # the reference's rebuilt rows write "no campaign" as NaN, its untouched rows as None;
    # the batched version writes None throughout
    reference["campaign"] = reference["campaign"].astype(object).where(reference["campaign"].notna(), None)
    batched = campaign_slates(df, pol, CONTEXTS, K, DAY, DRAWS, [SALE, second], ITEM_TAGS, draws_cache=cache)
    pd.testing.assert_frame_equal(reference, batched)
    # in batches of a few users at a time: the same rows
    import ml.marketing.campaigns as campaigns_module

    monkeypatch.setattr(campaigns_module, "ROWS_PER_CHUNK", 70)
    chunked = campaign_slates(df, pol, CONTEXTS, K, DAY, DRAWS, [SALE, second], ITEM_TAGS, draws_cache=cache)
    pd.testing.assert_frame_equal(reference, chunked)
    assert set(batched["campaign"].dropna()) == {"tent_sale", "backpack_week"}
    shown = set(zip(df["user_id"], df["item_id"], strict=True))
    new_rows = batched[[(u, i) not in shown for u, i in zip(batched["user_id"], batched["item_id"], strict=True)]]
    assert len(new_rows) and new_rows["reason"].str.startswith("featured: ").all()
    assert not new_rows["is_exploration"].any()
    if policy != "greedy":
        assert df["is_exploration"].any()
    if not pol.deterministic:
        assert (batched["propensity"] < 1).any()
    assert batched.groupby("user_id").size().eq(K).all()
