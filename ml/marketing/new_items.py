"""New-item discovery: a guaranteed but bounded exposure budget through exploration slots.

New items have no interactions, so exploitation never shows them. Each day every eligible user
gets a new-item slot with probability ``q``; the item in it is drawn uniformly from the new
items whose tags match the user's profile (targeted) or from all new items (untargeted), then
kept with the item's thinning probability ``a_i`` so that no item expects more than its daily
cap. The propensity of (user, item) is therefore exact: ``q / |M_u| * a_i``.
An item graduates out of "new" once its CTR confidence interval (Wilson, 95 %) is narrower
than ``ci_width`` (absolute, or relative to the estimate when ``relative=True``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.frames import isin, ranks, run_starts, sorted_distinct


@dataclass
class NewItemBudget:
    """How much exposure new items get and when they stop being new (see the module docstring)."""

    slot_probability: float = 0.3  # q: chance a user's exploration slot goes to a new item
    daily_cap: int = 200  # at most this many expected impressions per new item per day
    ci_width: float = 0.5  # graduation threshold
    relative: bool = True  # width relative to the CTR estimate (False: absolute CTR points)
    targeted: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.slot_probability <= 1:
            raise ValueError("slot_probability must be in (0, 1]")
        if self.daily_cap < 1:
            raise ValueError("daily_cap must be >= 1")
        if self.ci_width <= 0:
            raise ValueError("ci_width must be > 0")


def wilson_interval(
    clicks: np.ndarray | float, impressions: np.ndarray | float, z: float = 1.96
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a click-through rate; (0, 1) where there are no impressions."""
    n = np.asarray(impressions, dtype=float)
    c = np.asarray(clicks, dtype=float)
    safe = np.maximum(n, 1.0)
    p = c / safe
    denom = 1 + z**2 / safe
    centre = (p + z**2 / (2 * safe)) / denom
    half = z * np.sqrt(p * (1 - p) / safe + z**2 / (4 * safe**2)) / denom
    lo = np.where(n > 0, centre - half, 0.0)
    hi = np.where(n > 0, centre + half, 1.0)
    return lo, hi


def graduated(clicks: np.ndarray, impressions: np.ndarray, budget: NewItemBudget) -> np.ndarray:
    lo, hi = wilson_interval(clicks, impressions)
    width = hi - lo
    if budget.relative:
        est = np.asarray(clicks, float) / np.maximum(np.asarray(impressions, float), 1.0)
        return (est > 0) & (width < budget.ci_width * est)
    return (np.asarray(impressions) > 0) & (width < budget.ci_width)


def exposure_plan(
    user_tags: pd.DataFrame,
    item_tags: pd.DataFrame,
    new_items: list[str],
    budget: NewItemBudget,
    excluded: pd.DataFrame | None = None,
    cap_share: float = 1.0,
) -> pd.DataFrame:
    """Every (user, new item) pair that may be shown, with its exact propensity
    ``q / |M_u| * a_i`` (see the module docstring), sorted by user and item. Returns user_id,
    item_id, p_pick, accept, propensity, matched. Users and items are handled as integer codes
    (sorted like their ids), so the pairs come out sorted without sorting strings.
    ``excluded``: (user_id, item_id) pairs never to show (items the user bought); they are not
    in ``M_u``, so the propensities stay exact. ``cap_share``: the share of each item's daily
    cap these users may spend (a publish shard's, when the users are split into shards)."""
    empty = pd.DataFrame(columns=["user_id", "item_id", "propensity", "matched"])
    u_code, users = pd.factorize(user_tags["user_id"], sort=True)
    it = item_tags[isin(item_tags["item_id"], new_items)]
    item_names = np.asarray(sorted(set(new_items)), dtype=object)
    n_items = max(len(item_names), 1)
    # every (user, new item) pair sharing a tag, once each: a user's tagged rows repeated by
    # the number of new items of that tag
    tag_index = pd.Index(pd.unique(it["tag"]))
    it_t = tag_index.get_indexer(it["tag"])
    it_i = pd.Index(item_names).get_indexer(it["item_id"])
    by_tag = np.argsort(it_t, kind="stable")
    per_tag = np.bincount(it_t, minlength=len(tag_index))
    tag_start = np.cumsum(per_tag) - per_tag
    ut_t = tag_index.get_indexer(user_tags["tag"]) if len(tag_index) else np.full(len(user_tags), -1)
    rows = np.flatnonzero((ut_t >= 0) & (u_code >= 0))
    cnt = per_tag[ut_t[rows]]
    rep = np.repeat(rows, cnt)
    offset = ranks(cnt)
    m_items = it_i[by_tag][tag_start[ut_t[rep]] + offset]
    match_keys, _ = sorted_distinct(u_code[rep].astype(np.int64) * n_items + m_items)
    if budget.targeted:
        keys = match_keys
    else:
        keys = (np.arange(len(users), dtype=np.int64)[:, None] * n_items + np.arange(len(item_names))).ravel()
    if excluded is not None and len(excluded) and len(keys):
        ex_u = pd.Index(users).get_indexer(excluded["user_id"])
        ex_i = pd.Index(item_names).get_indexer(excluded["item_id"])
        known = (ex_u >= 0) & (ex_i >= 0)
        keys = keys[~np.isin(keys, ex_u[known].astype(np.int64) * n_items + ex_i[known])]
    if len(keys) == 0:
        return empty
    pu, pi = keys // n_items, keys % n_items
    p_pick = budget.slot_probability / np.bincount(pu)[pu]
    expected = np.bincount(pi, weights=p_pick, minlength=n_items)
    accept = np.minimum(1.0, budget.daily_cap * cap_share / expected[pi])
    # the id columns taken from arrays of the inputs' dtypes (no Python string per pair)
    item_array = pd.array(item_names, dtype=item_tags["item_id"].dtype)
    return pd.DataFrame(
        {
            "user_id": pd.Index(users).array.take(pu),
            "item_id": item_array.take(pi),
            "p_pick": p_pick,
            "accept": accept,
            "propensity": p_pick * accept,
            "matched": np.ones(len(keys), dtype=bool) if budget.targeted else np.isin(keys, match_keys),
        }
    )


def allocate(
    user_tags: pd.DataFrame,
    item_tags: pd.DataFrame,
    new_items: list[str],
    budget: NewItemBudget,
    seed: int,
    plan: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One day's new-item slots. ``user_tags``: user_id, tag (the user's known+candidate tags);
    ``item_tags``: item_id, tag; ``plan``: their :func:`exposure_plan` when already computed.
    Returns user_id, item_id, propensity, matched (bool).

    The draws, in this order from one generator seeded with ``seed``: per user of the plan (in
    the plan's order) whether it gets a slot; per plan row of those users a uniform number, the
    smallest of a user's picking its item; per picked user (sorted by id) whether the item is
    kept (probability ``accept``)."""
    rng = np.random.default_rng(seed)
    pairs = exposure_plan(user_tags, item_tags, new_items, budget) if plan is None else plan
    if pairs.empty:
        return pairs
    code, uniq = pd.factorize(pairs["user_id"])  # users in order of first appearance
    gets = rng.random(len(uniq)) < budget.slot_probability
    rows = np.flatnonzero(gets[code])
    u = rng.random(len(rows))
    # each user's rank by id, then per user the row with the smallest draw
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[np.argsort(np.asarray(uniq, dtype=object), kind="stable")] = np.arange(len(uniq))
    order = np.lexsort((u, rank[code[rows]]))
    by_user = rank[code[rows]][order]
    first = order[run_starts(by_user)]
    chosen = pairs.iloc[rows[first]]
    kept = chosen[rng.random(len(chosen)) < chosen["accept"].to_numpy()]
    return kept[["user_id", "item_id", "propensity", "matched"]].reset_index(drop=True)


def new_item_candidates(item_features: pd.DataFrame, budget: NewItemBudget, max_age_days: float) -> pd.DataFrame:
    """Items still "new": released at most ``max_age_days`` before the as-of time (or after it)
    and not yet graduated. ``item_features``: item_id, age_days, n_impressions, n_clicks.
    Returns those rows with ``graduated`` (False) kept for the report."""
    f = item_features.copy()
    f["graduated"] = graduated(
        f["n_clicks"].fillna(0).to_numpy(float), f["n_impressions"].fillna(0).to_numpy(float), budget
    )
    young = f["age_days"].fillna(np.inf) <= max_age_days
    return f[young & ~f["graduated"]].reset_index(drop=True)


def place_new_items(
    slates: pd.DataFrame,
    user_tags: pd.DataFrame,
    item_tags: pd.DataFrame,
    new_items: list[str],
    budget: NewItemBudget,
    seed: int,
    arm_features: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    excluded: pd.DataFrame | None = None,
    cap_share: float = 1.0,
) -> pd.DataFrame:
    """Spend the new-item budget in the published slates (rows of ``build_slates``).

    Every user with matching new items gets, with the exact probability of :func:`exposure_plan`,
    one new item in the last slot of the slate, flagged ``is_exploration`` with its propensity
    ``q / |M_u| * a_i``. The item the policy put in that slot is shown only when no new item
    is drawn, so its propensity is scaled by ``1 - rho_u`` (rho_u: the user's total new-item
    probability): every published propensity stays the exact probability of that item at that
    slot. A user's slate never repeats an item. Adds the boolean column ``new_item``.
    ``arm_features(users, tags)``: the ``arm_features`` text of each placed row's (user, tag)
    arm, None where the user has no such arm (the row keeps its text). ``excluded``: (user_id,
    item_id) pairs never placed and ``cap_share`` the share of each item's cap these users may
    spend (see :func:`exposure_plan`)."""
    out = slates.assign(new_item=False)
    # the user tags of users with published rows (each distinct user id looked up once)
    ut = user_tags[isin(user_tags["user_id"], out["user_id"].unique())]
    plan = exposure_plan(ut, item_tags, new_items, budget, excluded, cap_share)
    if plan.empty or out.empty:
        return out
    # a new item already in the user's slate cannot be drawn for it
    shown = set(
        zip(out["user_id"].to_numpy(dtype=object).tolist(), out["item_id"].to_numpy(dtype=object).tolist(), strict=True)
    )
    drawn = allocate(ut, item_tags, new_items, budget, seed, plan=plan)
    # (a boolean array, not a list: an empty list would select no columns instead of no rows)
    unseen = np.array(
        [
            (u, i) not in shown
            for u, i in zip(
                drawn["user_id"].to_numpy(dtype=object).tolist(),
                drawn["item_id"].to_numpy(dtype=object).tolist(),
                strict=True,
            )
        ],
        dtype=bool,
    )
    drawn = drawn[unseen]
    rho = plan.groupby("user_id")["propensity"].sum()
    last = out.groupby("user_id")["rank"].transform("max") == out["rank"]
    tag_of = item_tags[isin(item_tags["item_id"], new_items)].drop_duplicates("item_id").set_index("item_id")["tag"]
    idx_last = out.index[last]
    scale = 1.0 - out.loc[idx_last, "user_id"].map(rho).fillna(0.0)
    out.loc[idx_last, "propensity"] = out.loc[idx_last, "propensity"] * scale
    out.loc[idx_last, "propensity_se"] = out.loc[idx_last, "propensity_se"] * scale
    pick = drawn.drop_duplicates("user_id", keep="last").set_index("user_id")
    last_users = out.loc[idx_last, "user_id"]
    rows = idx_last[isin(last_users, pick.index)]
    if len(rows) == 0:
        return out
    users_hit = out.loc[rows, "user_id"]
    items = users_hit.map(pick["item_id"]).astype(str)
    tags = items.map(tag_of).fillna("").astype(str)
    # one column assignment each (a per-cell write copies an Arrow-backed string column)
    out.loc[rows, "item_id"] = items.to_numpy()
    out.loc[rows, "propensity"] = users_hit.map(pick["propensity"]).astype(float).to_numpy()
    out.loc[rows, "propensity_se"] = 0.0
    out.loc[rows, "is_exploration"] = True
    out.loc[rows, "new_item"] = True
    out.loc[rows, "reason_tag"] = tags.to_numpy()
    out.loc[rows, "reason"] = [f"something new for you: just in, {t.split(':', 1)[-1].replace('_', ' ')}" for t in tags]
    if "campaign" in out:
        out.loc[rows, "campaign"] = None
    if arm_features is not None and "arm_features" in out:
        feats = np.asarray(arm_features(users_hit.to_numpy(dtype=object), tags.to_numpy(dtype=object)), dtype=object)
        have = np.array([f is not None for f in feats.tolist()], dtype=bool)
        if have.any():
            out.loc[rows[have], "arm_features"] = feats[have].tolist()
    return out


def impressions_to_judge(ctr: float, budget: NewItemBudget, z: float = 1.96) -> int:
    """Impressions needed (in expectation) before the CI is narrower than the threshold,
    using the normal approximation: width = 2 z sqrt(p(1-p)/n)."""
    target = budget.ci_width * ctr if budget.relative else budget.ci_width
    return math.ceil((2 * z) ** 2 * ctr * (1 - ctr) / target**2)
