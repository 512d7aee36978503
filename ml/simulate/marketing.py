"""Marketing figures measured in the simulator: how many impressions a new item needs before it
is judged (with and without targeting), and a campaign's uplift against its holdout.

New items: for every item without history, impressions arrive one at a time from its audience
(targeted: users whose observed profile holds the item's category tag; untargeted: any user),
each clicked with the environment's true probability at the discovery slot (the last of k).
The item is judged at the first impression where :func:`ml.marketing.new_items.graduated`
holds. Fatigue is ignored (a new item meets each user at most a few times).

Campaign: the simulated days form the campaign window; every day the greedy policy's slates are
built by the publish functions, :func:`ml.marketing.campaigns.campaign_slates` applies the
campaign, the environment answers, and :func:`ml.marketing.report.campaign_report` compares
clicks and purchases per user in the treatment arm with the holdout.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from ml.marketing.campaigns import Campaign
from ml.marketing.new_items import NewItemBudget, graduated, plan_exposure
from ml.simulate.runner import World


def observed_user_tags(world: World) -> pd.DataFrame:
    """Each simulated user's category tags seen in the history (the profile targeting uses)."""
    tags = world.history.merge(world.items[["item_id", "tag"]], on="item_id")
    return tags[["user_id", "tag"]].drop_duplicates().reset_index(drop=True)


def new_item_impressions(
    world: World, budget: NewItemBudget, targeted: bool, max_impressions: int = 50_000, seed: int = 0
) -> pd.DataFrame:
    """Per new item (no history): its audience size, true mean CTR over the audience at the
    discovery slot, and the impressions after which it was judged (NaN if not within
    ``max_impressions``). Shapes: one row per new item."""
    env = world.env
    rng = np.random.default_rng(seed)
    seen = set(world.history["item_id"])
    items = world.items[~world.items["item_id"].isin(seen) & world.items["item_id"].isin(env.item_index)]
    user_tags = observed_user_tags(world)
    everyone = pd.concat([user_tags, pd.DataFrame({"user_id": world.users, "tag": ""})], ignore_index=True)
    plan = plan_exposure(
        everyone, items[["item_id", "tag"]], items["item_id"].tolist(), replace(budget, targeted=targeted)
    ).frame()
    daily = plan.groupby("item_id")["propensity"].sum()
    p_slot = env.base_probability(0) * env.pos_bias[env.k - 1]
    all_users = np.array([env.user_index[u] for u in world.users])
    rows = []
    for item, tag in zip(items["item_id"], items["tag"], strict=True):
        aud = user_tags.loc[user_tags["tag"] == tag, "user_id"] if targeted else pd.Series(world.users)
        idx = np.array([env.user_index[u] for u in aud if u in env.user_index]) if len(aud) else all_users[:0]
        if len(idx) == 0:
            rows.append(
                {"item_id": item, "audience": 0, "daily_impressions": 0.0, "true_ctr": np.nan, "impressions": np.nan}
            )
            continue
        p = np.clip(p_slot[idx, env.item_index[item]], 0, 1)
        users = rng.integers(0, len(idx), max_impressions)
        clicks = np.cumsum(rng.random(max_impressions) < p[users])
        n = np.arange(1, max_impressions + 1)
        ok = graduated(clicks, n, budget)
        rows.append(
            {
                "item_id": item,
                "audience": len(idx),
                "daily_impressions": float(daily.get(item, 0.0)),
                "true_ctr": float(p.mean()),
                "impressions": float(n[ok.argmax()]) if ok.any() else np.nan,
            }
        )
    return pd.DataFrame(rows)


def summarise_new_items(per_item: pd.DataFrame) -> dict[str, Any]:
    """Median (and quartiles of) impressions to judgement, the share of items judged, and the
    days that takes at the budget (each item's expected daily impressions from
    :func:`ml.marketing.new_items.plan_exposure`)."""
    judged = per_item["impressions"].dropna()
    n_items = max(len(per_item), 1)
    days = (per_item["impressions"] / per_item["daily_impressions"].replace(0, np.nan)).dropna()
    return {
        "items": len(per_item),
        "judged_share": round(len(judged) / n_items, 3),
        "median_impressions": float(judged.median()) if len(judged) else None,
        "p25_impressions": float(judged.quantile(0.25)) if len(judged) else None,
        "p75_impressions": float(judged.quantile(0.75)) if len(judged) else None,
        "mean_true_ctr": round(float(per_item["true_ctr"].mean()), 5),
        "median_daily_impressions": round(float(per_item["daily_impressions"].median()), 1),
        "median_days_at_budget": round(float(days.median()), 1) if len(days) else None,
    }


def shift_window(campaign: Campaign, start: pd.Timestamp, days: int) -> Campaign:
    """The campaign with its window moved onto ``days`` simulated days from ``start``."""
    return replace(campaign, start=start.to_pydatetime(), end=(start + pd.Timedelta(days=days)).to_pydatetime())


def simulate_campaign(world: World, campaign: Campaign, days: int, seed: int = 0) -> pd.DataFrame:
    """Run ``campaign`` over ``days`` simulated days (its window moved onto them, see
    :func:`shift_window`) with the greedy policy; return one row per exposed user: user_id,
    impressions, clicks, purchases."""
    from ml.columns import DEFAULT_EVENT_WEIGHTS
    from ml.explore.candidates import CandidateInputs, CandidateSettings, build_contexts
    from ml.explore.feedback import FeedbackStats
    from ml.explore.policies import make_policy
    from ml.explore.slate import build_slates
    from ml.marketing.campaigns import campaign_slates
    from ml.simulate.runner import _champion_candidates, _decayed

    s = world.settings
    env = world.env
    env.reset()
    camp = shift_window(campaign, world.start, days)
    policy = make_policy("greedy")
    rng = np.random.default_rng(seed)
    events = world.history.copy()
    item_tags = pd.DataFrame(
        {
            "item_id": np.concatenate([env.item_ids, env.item_ids]),
            "tag": np.concatenate([env.item_tag, env.item_style]),
        }
    ).dropna()
    settings = CandidateSettings(items_per_tag=s.k, slate_size=s.k)
    stats = FeedbackStats.from_feedback(
        world.history_feedback, dict(zip(world.items["item_id"], world.items["tag"], strict=True))
    )
    outcomes = []
    for day in range(days):
        as_of = world.start + pd.Timedelta(days=day)
        bought = events.loc[events["event_type"] == "purchase", ["user_id", "item_id"]].drop_duplicates()
        agg = (
            events.assign(n=1)
            .groupby(["user_id", "item_id"], as_index=False)
            .agg(n_events=("n", "sum"), last_at=("event_at", "max"))
        )
        inter = agg.merge(_decayed(events, as_of, s.half_life_days), on=["user_id", "item_id"])
        inputs = CandidateInputs(
            items=world.items,
            interactions=inter,
            champion=_champion_candidates(world, events, bought, as_of),
            excluded=bought,
            as_of=as_of,
            sessions=world.sessions,
            feedback=stats,
        )
        contexts = build_contexts(inputs, world.users, settings)
        stamp = as_of.strftime("%Y-%m-%d")
        slates = build_slates(policy, contexts, s.k, stamp, f"campaign-{day}", n_draws=1)
        slates = campaign_slates(slates, policy, contexts, s.k, stamp, 1, [camp], item_tags)
        ev = env.respond(slates, day, world.start, rng)
        outcomes.append(ev[["user_id", "event_type"]])
        new = ev[ev["event_type"].isin(["click", "purchase"])][["user_id", "item_id", "event_type", "event_at"]]
        new = new.assign(weight=new["event_type"].map(DEFAULT_EVENT_WEIGHTS).astype(float))
        events = pd.concat([events, new], ignore_index=True)
    allev = pd.concat(outcomes, ignore_index=True)
    per_user = pd.crosstab(allev["user_id"], allev["event_type"])
    for col in ("impression", "click", "purchase"):
        if col not in per_user:
            per_user[col] = 0
    return (
        per_user.rename(columns={"impression": "impressions", "click": "clicks", "purchase": "purchases"})[
            ["impressions", "clicks", "purchases"]
        ]
        .reset_index()
        .rename_axis(columns=None)
    )
