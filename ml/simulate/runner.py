"""Running policies day by day through the platform's publish -> feedback -> update loop.

Each simulated day, for every policy separately (same users, same shop, same seeds):

1. **publish**: the champion (item kNN trained on the shop's history, rescored daily on history
   plus simulated clicks and purchases) proposes candidates; ``ml.explore.candidates.build_contexts``
   and ``ml.explore.slate.build_slates`` (the functions the publish task calls) build the slates;
2. **feedback**: the environment answers with impression, click and purchase events, joined to
   the logged slates by ``ml.explore.feedback.feedback_from_events`` (the mart's twin);
3. **update**: the policy's batch ``fit`` and the context statistics (``FeedbackStats``) are
   recomputed from all feedback so far, counting ``SimulationSettings.reward`` (click, purchase
   or revenue: what the policies learn from); clicks and purchases join the user's history.

Reported per policy: cumulative clicks, purchases and revenue (catalogue price of each purchase), regret against the oracle (expected clicks
lost), share of each user's true interest tags that received a click ("discovered"), catalogue
coverage, and the click-through rate of the first three days.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml.columns import DEFAULT_EVENT_WEIGHTS
from ml.explore import columns as C
from ml.explore.candidates import CandidateInputs, CandidateSettings, build_contexts, item_arm_tags
from ml.explore.feedback import FeedbackStats, feedback_from_events
from ml.explore.policies import make_policy
from ml.explore.reward import Learning
from ml.explore.slate import build_slates
from ml.simulate.environment import ShopEnvironment


@dataclass
class SimulationSettings:
    size: str = "small"
    seed: int = 7
    users: int | None = 200
    days: int = 30
    k: int = 10
    n_draws: int = 16
    candidates_per_user: int = 50
    half_life_days: float = 14.0
    reward: str = "click"  # what the policies learn from (ml.explore.reward)


@dataclass
class World:
    """The shop, its history and the environment shared by every policy's run."""

    settings: SimulationSettings
    items: pd.DataFrame
    history: pd.DataFrame
    history_feedback: pd.DataFrame
    env: ShopEnvironment
    users: list[str]
    start: pd.Timestamp
    sessions: dict[str, int]
    champion: Any
    item_ids: np.ndarray


@dataclass
class PolicyRun:
    name: str
    daily: pd.DataFrame
    summary: dict[str, float]
    seconds: float
    feedback: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)


def build_world(settings: SimulationSettings) -> World:
    """Generate the shop, pick the simulated users, train the champion on the history."""
    from ml.recommend import InteractionData, ItemKNN
    from ml.shop.generate import generate

    tables = generate(size=settings.size, seed=settings.seed)
    ev = tables["events"].copy()
    ev["event_at"] = pd.to_datetime(ev["event_time"]).dt.tz_localize(None)
    start = ev["event_at"].max().normalize() + pd.Timedelta(days=1)
    all_users = np.sort(tables["users"]["user_id"].unique())
    rng = np.random.default_rng(settings.seed)
    if settings.users and settings.users < len(all_users):
        users = sorted(rng.choice(all_users, settings.users, replace=False).tolist())
    else:
        users = all_users.tolist()
    inter = ev[ev["event_type"].isin(list(DEFAULT_EVENT_WEIGHTS)) & ev["item_id"].notna()].copy()
    inter["weight"] = inter["event_type"].map(DEFAULT_EVENT_WEIGHTS).astype(float)
    items_raw = tables["items"].copy()
    levels = items_raw["category_path"].str.split(" > ")
    pop = inter.groupby("item_id")["user_id"].nunique()
    feats = pd.DataFrame(
        {
            "item_id": items_raw["item_id"],
            "category_path": items_raw["category_path"],
            "category_l1": levels.str[0],
            "category_l3": levels.str[-1],
            "n_users": items_raw["item_id"].map(pop).fillna(0).to_numpy(),
        }
    )
    items = item_arm_tags(feats)
    # the history's own recommendation slates (no logged propensity): feedback for the statistics
    rec = ev[ev[C.RECOMMENDATION_ID].notna() & ev["user_id"].isin(users)]
    rec = rec[["event_type", "user_id", "item_id", C.RECOMMENDATION_ID, C.POSITION, "event_at", "price", "quantity"]]
    history_feedback = feedback_from_events(pd.DataFrame(columns=list(C.LOGGED_SLATE_COLUMNS)), rec)
    # champion: item kNN on the whole history, decayed to the simulation start
    agg = _decayed(inter, start, settings.half_life_days)
    data = InteractionData.from_frame(agg, item_ids=np.sort(items["item_id"].unique()))
    champion = ItemKNN(neighbours=100, shrinkage=10.0).fit(data.matrix)
    sess = ev[ev["user_id"].isin(users)].groupby("user_id")["session_id"].nunique()
    prices = items_raw.set_index("item_id")["price"].astype(np.float64)
    env = ShopEnvironment(
        tables["truth_user_interests"], tables["truth_item_tags"], users, settings.days, settings.k, prices=prices
    )
    return World(
        settings=settings,
        items=items,
        history=inter[inter["user_id"].isin(users)][["user_id", "item_id", "event_type", "event_at", "weight"]],
        history_feedback=history_feedback,
        env=env,
        users=users,
        start=start,
        sessions={str(u): int(n) for u, n in sess.items()},
        champion=champion,
        item_ids=data.item_ids,
    )


def _decayed(events: pd.DataFrame, as_of: pd.Timestamp, half_life: float) -> pd.DataFrame:
    age = (as_of - events["event_at"]).dt.total_seconds() / 86400.0
    w = events["weight"] * np.power(0.5, age.clip(lower=0) / half_life)
    return events.assign(weight=w).groupby(["user_id", "item_id"], as_index=False)["weight"].sum()


def _champion_candidates(world: World, events: pd.DataFrame, bought: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    from ml.recommend import InteractionData

    agg = _decayed(events, as_of, world.settings.half_life_days)
    users = np.asarray(world.users, dtype=object)
    X = InteractionData.from_frame(agg, user_ids=users, item_ids=world.item_ids).matrix
    E = InteractionData.from_frame(
        bought.assign(weight=1.0), weight_col="weight", user_ids=users, item_ids=world.item_ids
    ).matrix
    idx, sc = world.champion.recommend(X, k=world.settings.candidates_per_user, exclude=E)
    u = np.repeat(np.arange(len(users)), idx.shape[1])
    ok = idx.ravel() >= 0
    return pd.DataFrame(
        {
            "user_id": users[u[ok]],
            "item_id": world.item_ids[idx.ravel()[ok]],
            "score": np.where(np.isfinite(sc.ravel()[ok]), sc.ravel()[ok], 0.0),
            "reason": "",
        }
    )


def run_policy(world: World, name: str, params: dict[str, Any] | None = None) -> PolicyRun:
    """Simulate one policy for ``settings.days`` days (see the module docstring)."""
    s = world.settings
    env = world.env
    env.reset()
    policy = make_policy(name, **(params or {}))
    rng = np.random.default_rng(s.seed + 1)
    events = world.history.copy()
    feedback = world.history_feedback.copy()
    item_tags = dict(zip(world.items["item_id"], world.items["tag"], strict=True))
    settings = CandidateSettings(items_per_tag=s.k, slate_size=s.k)
    discovered: set[tuple[str, str]] = set()
    shown_items: set[str] = set()
    truth_by_user = {u: env.interest_tags(env.user_index[u]) for u in world.users}
    dormant_by_user = {u: env.interest_tags(env.user_index[u], dormant_only=True) for u in world.users}
    truth_pairs = {(u, t) for u, ts in truth_by_user.items() for t in ts}
    learning = Learning.of(s.reward, lambda: env.prices)
    rows = []
    t0 = time.perf_counter()
    for day in range(s.days):
        as_of = world.start + pd.Timedelta(days=day)
        inputs = _day_inputs(world, events, feedback, item_tags, as_of, learning)
        policy.fit(feedback, learning)
        contexts = build_contexts(inputs, world.users, settings)
        run_id = f"sim-{name}-{day}"
        slates = build_slates(policy, contexts, s.k, as_of.strftime("%Y-%m-%d"), run_id, n_draws=s.n_draws)
        oracle = float(env.oracle_expected_clicks(day).sum())
        ev = env.respond(slates, day, world.start, rng)
        logged = _logged(slates, run_id, as_of)
        fb = feedback_from_events(logged, ev)
        feedback = pd.concat([feedback, fb], ignore_index=True)
        new = ev[ev["event_type"].isin(["click", "purchase"])][["user_id", "item_id", "event_type", "event_at"]]
        new = new.assign(weight=new["event_type"].map(DEFAULT_EVENT_WEIGHTS).astype(float))
        events = pd.concat([events, new], ignore_index=True)
        clicked = fb[fb[C.CLICKED] == 1]
        for u, it in zip(clicked["user_id"], clicked["item_id"], strict=True):
            pair = (u, item_tags.get(it, ""))
            if pair in truth_pairs:
                discovered.add(pair)
        shown_items.update(slates["item_id"])
        imp = ev[ev["event_type"] == "impression"]
        rows.append(
            {
                "day": day,
                "impressions": len(imp),
                "clicks": int(fb[C.CLICKED].sum()),
                "purchases": int(fb[C.PURCHASED].sum()),
                "revenue": float(fb[C.REVENUE].sum()),
                "expected_clicks": float(imp["expected_click"].sum()),
                "oracle_expected_clicks": oracle,
                "exploration_share": float(slates[C.IS_EXPLORATION].mean()),
                "interests_discovered": _discovered_share(truth_by_user, discovered),
                "dormant_discovered": _discovered_share(dormant_by_user, discovered),
                "coverage": len(shown_items) / max(len(world.items), 1),
            }
        )
    daily = pd.DataFrame(rows)
    return PolicyRun(name, daily, _summary(daily), time.perf_counter() - t0, feedback)


def _day_inputs(
    world: World,
    events: pd.DataFrame,
    feedback: pd.DataFrame,
    item_tags: dict[str, str],
    as_of: pd.Timestamp,
    learning: Learning,
) -> CandidateInputs:
    """The candidate inputs of one simulated day from the events and feedback so far (the
    feedback statistics count ``learning``'s reward)."""
    bought = events.loc[events["event_type"] == "purchase", ["user_id", "item_id"]].drop_duplicates()
    agg = (
        events.assign(n=1)
        .groupby(["user_id", "item_id"], as_index=False)
        .agg(n_events=("n", "sum"), last_at=("event_at", "max"))
    )
    dec = _decayed(events, as_of, world.settings.half_life_days)
    return CandidateInputs(
        items=world.items,
        interactions=agg.merge(dec, on=["user_id", "item_id"]),
        champion=_champion_candidates(world, events, bought, as_of),
        excluded=bought,
        as_of=as_of,
        sessions=world.sessions,
        feedback=FeedbackStats.from_feedback(feedback, item_tags, learning),
    )


def _summary(daily: pd.DataFrame) -> dict[str, Any]:
    """A policy run's totals from its daily rows."""
    first = daily[daily["day"] < 3]
    return {
        "cumulative_clicks": int(daily["clicks"].sum()),
        "cumulative_purchases": int(daily["purchases"].sum()),
        "cumulative_revenue": round(float(daily["revenue"].sum()), 2),
        "regret": float((daily["oracle_expected_clicks"] - daily["expected_clicks"]).sum()),
        "interests_discovered": float(daily["interests_discovered"].iloc[-1]) if len(daily) else 0.0,
        "coverage": float(daily["coverage"].iloc[-1]) if len(daily) else 0.0,
        "ctr_first_3_days": float(first["clicks"].sum() / max(first["impressions"].sum(), 1)),
    }


def _logged(slates: pd.DataFrame, run_id: str, as_of: pd.Timestamp) -> pd.DataFrame:
    return pd.DataFrame(
        {
            C.RECOMMENDATION_ID: slates[C.RECOMMENDATION_ID],
            C.RUN_ID: run_id,
            "user_id": slates["user_id"],
            C.POSITION: slates["rank"],
            "item_id": slates["item_id"],
            C.TAG: slates["reason_tag"],
            C.POLICY: slates[C.POLICY],
            C.POLICY_VERSION: slates[C.POLICY],
            C.PROPENSITY: slates[C.PROPENSITY],
            C.PROPENSITY_SE: slates[C.PROPENSITY_SE],
            C.IS_EXPLORATION: slates[C.IS_EXPLORATION],
            "score": slates["score"],
            C.ARM_FEATURES: slates[C.ARM_FEATURES],
            C.AS_OF: as_of,
        }
    )


def _discovered_share(truth_by_user: dict[str, set[str]], discovered: set[tuple[str, str]]) -> float:
    """Mean over users of the share of their true interest tags that got a click."""
    shares = [sum((u, t) in discovered for t in ts) / len(ts) for u, ts in truth_by_user.items() if ts]
    return float(np.mean(shares)) if shares else 0.0
