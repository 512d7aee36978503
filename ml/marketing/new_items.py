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
from typing import Any

import numpy as np
import pandas as pd

from ml.frames import isin, member, ranks, run_starts, sorted_distinct


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


@dataclass
class ExposurePlan:
    """Every (user, new item) pair that may be shown, kept per user and per item instead of
    pair by pair: on a large shop the pairs are tens of millions (120k users x 720 new items:
    24.5M), and only the users who get a slot need theirs listed (:meth:`pairs`).

    ``users``: the sorted ids of the users with at least one pair, with ``p_pick`` = q / |M_u|
    and ``rho``, the user's total propensity (sum over M_u of p_pick x a_i); ``items``: the
    sorted new item ids, with ``accept`` (a_i). A user's pairs are the new items of its tags
    (``user_tags`` rows: user and tag positions, by user; ``tag_items``: the item positions of
    tag ``t`` from ``tag_start[t]``; ``item_tag``: each item's tag, -1 for none), or every new
    item when untargeted, less the ``excluded`` keys (user x len(items) + item, sorted)."""

    users: Any
    items: Any
    p_pick: np.ndarray
    accept: np.ndarray
    rho: np.ndarray
    targeted: bool
    user_tags: tuple[np.ndarray, np.ndarray]
    tag_items: np.ndarray
    tag_start: np.ndarray
    item_tag: np.ndarray
    excluded: np.ndarray

    @property
    def empty(self) -> bool:
        return len(self.users) == 0

    def pairs(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(user, item, matched) positions of every pair of the users at the ascending
        positions ``users``, sorted by user and item; matched: the item has one of the user's
        tags (always, when targeted)."""
        n_items = max(len(self.items), 1)
        users = np.asarray(users, dtype=np.int64)
        ut_user, ut_tag = self.user_tags
        if self.targeted:
            wanted = np.zeros(len(self.users), dtype=bool)
            wanted[users] = True
            rows = np.flatnonzero(wanted[ut_user])
            count = np.diff(np.r_[self.tag_start, len(self.tag_items)])[ut_tag[rows]]
            rep = np.repeat(rows, count)
            keys = np.sort(ut_user[rep] * n_items + self.tag_items[self.tag_start[ut_tag[rep]] + ranks(count)])
        else:
            keys = (users[:, None] * n_items + np.arange(len(self.items))).ravel()
        keys = keys[~member(keys, self.excluded)[0]]
        pu, pi = keys // n_items, keys % n_items
        if self.targeted:
            return pu, pi, np.ones(len(keys), dtype=bool)
        n_tags = len(self.tag_start) + 1
        matched = member(pu * n_tags + self.item_tag[pi], np.sort(ut_user * n_tags + ut_tag))[0]
        return pu, pi, matched

    def frame(self) -> pd.DataFrame:
        """Every pair as a row (sorted by user and item): user_id, item_id, p_pick, accept,
        propensity, matched."""
        pu, pi, matched = self.pairs(np.arange(len(self.users)))
        return pd.DataFrame(
            {
                "user_id": self.users.take(pu),
                "item_id": self.items.take(pi),
                "p_pick": self.p_pick[pu],
                "accept": self.accept[pi],
                "propensity": self.p_pick[pu] * self.accept[pi],
                "matched": matched,
            }
        )


def plan_exposure(
    user_tags: pd.DataFrame,
    item_tags: pd.DataFrame,
    new_items: list[str],
    budget: NewItemBudget,
    excluded: pd.DataFrame | None = None,
    cap_share: float = 1.0,
) -> ExposurePlan:
    """The :class:`ExposurePlan` of the users of ``user_tags`` (user_id, tag) for the
    ``new_items`` (their tags in ``item_tags``: item_id, tag; an item listed twice keeps its
    first tag), each pair with its exact propensity ``q / |M_u| * a_i`` (module docstring).
    ``excluded``: (user_id, item_id) pairs never to show (items the user bought); they are not
    in ``M_u``, so the propensities stay exact. ``cap_share``: the share of each item's daily
    cap these users may spend (a publish shard's, when the users are split into shards).
    Everything is counted per (user, tag) row and per item; no pair is listed."""
    u_code, users = pd.factorize(user_tags["user_id"], sort=True)
    items = pd.array(sorted(set(new_items)), dtype=item_tags["item_id"].dtype)
    it = item_tags[isin(item_tags["item_id"], new_items)].drop_duplicates("item_id")
    tag_index = pd.Index(pd.unique(it["tag"]))
    n_items, n_tags = max(len(items), 1), len(tag_index) + 1
    item_tag = np.full(len(items), -1, dtype=np.int64)
    item_tag[pd.Index(items).get_indexer(it["item_id"])] = tag_index.get_indexer(it["tag"])
    tag_items = np.argsort(item_tag, kind="stable")[int(np.sum(item_tag < 0)) :]  # by tag, then item
    per_tag = np.bincount(item_tag[item_tag >= 0], minlength=len(tag_index))
    # each user's distinct tags with new items, by user (a code key, so input order is irrelevant)
    ut_t = tag_index.get_indexer(user_tags["tag"]) if len(tag_index) else np.full(len(user_tags), -1)
    ok = (ut_t >= 0) & (u_code >= 0)
    ut_keys, _ = sorted_distinct(u_code[ok].astype(np.int64) * n_tags + ut_t[ok])
    ex_u, ex_i = _excluded_pairs(excluded, users, items)
    if budget.targeted:  # an excluded pair counts only when its item has one of the user's tags
        candidate = member(ex_u * n_tags + item_tag[ex_i], ut_keys)[0] & (item_tag[ex_i] >= 0)
        ex_u, ex_i = ex_u[candidate], ex_i[candidate]
    if budget.targeted:
        size = np.bincount(ut_keys // n_tags, weights=per_tag[ut_keys % n_tags], minlength=len(users))
    else:
        size = np.full(len(users), float(len(items)))
    size = size - np.bincount(ex_u, minlength=len(users))
    keep = size > 0
    position = np.cumsum(keep) - 1  # a kept user's position among the plan's users
    p_pick = budget.slot_probability / size[keep]
    ut_user, ut_tag = position[ut_keys // n_tags], ut_keys % n_tags
    on = keep[ut_keys // n_tags]
    ut_user, ut_tag = ut_user[on], ut_tag[on]
    ex_u = position[ex_u]
    # per item: the expected picks, summed by user as the rows come (by tag when targeted)
    if budget.targeted:
        by_tag = np.bincount(ut_tag, weights=p_pick[ut_user], minlength=n_tags)
        expected = np.where(item_tag >= 0, by_tag[item_tag], 0.0)
    else:
        expected = np.full(len(items), float(p_pick.sum()))
    expected = expected - np.bincount(ex_i, weights=p_pick[ex_u], minlength=len(items))
    # (an item nobody may be shown expects 0, or a rounding residue of it: nothing to thin)
    accept = np.minimum(1.0, budget.daily_cap * cap_share / np.maximum(expected, 1e-300))
    if budget.targeted:
        tag_accept = np.bincount(item_tag[item_tag >= 0], weights=accept[item_tag >= 0], minlength=n_tags)
        total = np.bincount(ut_user, weights=tag_accept[ut_tag], minlength=len(p_pick))
    else:
        total = np.full(len(p_pick), float(accept.sum()))
    total = total - np.bincount(ex_u, weights=accept[ex_i], minlength=len(p_pick))
    return ExposurePlan(
        users=users[keep],
        items=items,
        p_pick=p_pick,
        accept=accept,
        rho=p_pick * total,
        targeted=budget.targeted,
        user_tags=(ut_user, ut_tag),
        tag_items=tag_items,
        tag_start=np.cumsum(per_tag) - per_tag,
        item_tag=item_tag,
        excluded=np.sort(ex_u * n_items + ex_i),
    )


def _excluded_pairs(excluded: pd.DataFrame | None, users: Any, items: Any) -> tuple[np.ndarray, np.ndarray]:
    """(user, item) positions of the distinct ``excluded`` pairs among ``users`` x ``items``."""
    if excluded is None or not len(excluded) or not len(users) or not len(items):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    u = pd.Index(users).get_indexer(excluded["user_id"])
    i = pd.Index(items).get_indexer(excluded["item_id"])
    ok = (u >= 0) & (i >= 0)
    keys, _ = sorted_distinct(u[ok].astype(np.int64) * len(items) + i[ok])
    return keys // len(items), keys % len(items)


def allocate(
    user_tags: pd.DataFrame,
    item_tags: pd.DataFrame,
    new_items: list[str],
    budget: NewItemBudget,
    seed: int,
    plan: ExposurePlan | None = None,
) -> pd.DataFrame:
    """One day's new-item slots. ``user_tags``: user_id, tag (the user's known+candidate tags);
    ``item_tags``: item_id, tag; ``plan``: their :func:`plan_exposure` when already made.
    Returns user_id, item_id, propensity, matched (bool).

    The draws, in this order from one generator seeded with ``seed``: per user of the plan (by
    id) whether it gets a slot; per pair of those users (by user and item) a uniform number,
    the smallest of a user's picking its item; per picked user (by id) whether the item is kept
    (probability ``accept``). Only the pairs of the users who get a slot are listed."""
    rng = np.random.default_rng(seed)
    plan = plan_exposure(user_tags, item_tags, new_items, budget) if plan is None else plan
    gets = np.flatnonzero(rng.random(len(plan.users)) < budget.slot_probability)
    pu, pi, matched = plan.pairs(gets)
    first = _smallest_per_run(rng.random(len(pu)), pu)
    kept = first[rng.random(len(first)) < plan.accept[pi[first]]]
    return pd.DataFrame(
        {
            "user_id": plan.users.take(pu[kept]),
            "item_id": plan.items.take(pi[kept]),
            "propensity": plan.p_pick[pu[kept]] * plan.accept[pi[kept]],
            "matched": matched[kept],
        }
    )


def _smallest_per_run(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Position of the smallest of ``values`` in each run of equal ``groups`` (rows grouped),
    the first one on a tie."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(run_starts(groups))
    smallest = np.minimum.reduceat(values, starts)
    hit = np.flatnonzero(values == np.repeat(smallest, np.diff(np.r_[starts, len(values)])))
    return hit[run_starts(groups[hit])]


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

    Every user with matching new items gets, with the exact probability of :func:`plan_exposure`,
    one new item in the last slot of the slate, flagged ``is_exploration`` with its propensity
    ``q / |M_u| * a_i``. The item the policy put in that slot is shown only when no new item
    is drawn, so its propensity is scaled by ``1 - rho_u`` (rho_u: the user's total new-item
    probability): every published propensity stays the exact probability of that item at that
    slot. A user's slate never repeats an item. Adds the boolean column ``new_item``.
    ``arm_features(users, tags)``: the ``arm_features`` text of each placed row's (user, tag)
    arm, None where the user has no such arm (the row keeps its text). ``excluded``: (user_id,
    item_id) pairs never placed and ``cap_share`` the share of each item's cap these users may
    spend (see :func:`plan_exposure`)."""
    out = slates.assign(new_item=False)
    # the user tags of users with published rows (each distinct user id looked up once)
    ut = user_tags[isin(user_tags["user_id"], out["user_id"].unique())]
    plan = plan_exposure(ut, item_tags, new_items, budget, excluded, cap_share)
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
    rho = pd.Series(plan.rho, index=plan.users)
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
