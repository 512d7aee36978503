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
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class NewItemBudget:
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


def allocate(
    user_tags: pd.DataFrame,
    item_tags: pd.DataFrame,
    new_items: list[str],
    budget: NewItemBudget,
    seed: int,
) -> pd.DataFrame:
    """One day's new-item slots. ``user_tags``: user_id, tag (the user's known+candidate tags);
    ``item_tags``: item_id, tag. Returns user_id, item_id, propensity, matched (bool)."""
    rng = np.random.default_rng(seed)
    users = np.sort(user_tags["user_id"].unique())
    it = item_tags[item_tags["item_id"].isin(new_items)]
    if budget.targeted:
        pairs = user_tags.merge(it, on="tag")[["user_id", "item_id"]].drop_duplicates()
    else:
        pairs = pd.MultiIndex.from_product([users, sorted(new_items)], names=["user_id", "item_id"]).to_frame(
            index=False
        )
    if pairs.empty:
        return pd.DataFrame(columns=["user_id", "item_id", "propensity", "matched"])
    m_u = pairs.groupby("user_id")["item_id"].transform("size")
    pairs = pairs.assign(p_pick=budget.slot_probability / m_u)
    expected = pairs.groupby("item_id")["p_pick"].sum()
    accept = np.minimum(1.0, budget.daily_cap / expected)
    pairs["propensity"] = pairs["p_pick"] * pairs["item_id"].map(accept)
    # draw: does the user get a slot, which item, is it kept
    slot_users = pairs["user_id"].drop_duplicates()
    gets = slot_users[rng.random(len(slot_users)) < budget.slot_probability]
    cand = pairs[pairs["user_id"].isin(set(gets))].copy()
    cand["u"] = rng.random(len(cand))
    chosen = cand.sort_values(["user_id", "u"]).groupby("user_id").head(1)
    kept = chosen[rng.random(len(chosen)) < chosen["item_id"].map(accept).to_numpy()]
    matched = kept.merge(
        user_tags.merge(it, on="tag")[["user_id", "item_id"]].drop_duplicates().assign(matched=True),
        on=["user_id", "item_id"],
        how="left",
    )
    matched["matched"] = matched["matched"].fillna(False).astype(bool)
    return matched[["user_id", "item_id", "propensity", "matched"]].reset_index(drop=True)


def impressions_to_judge(ctr: float, budget: NewItemBudget, z: float = 1.96) -> int:
    """Impressions needed (in expectation) before the CI is narrower than the threshold,
    using the normal approximation: width = 2 z sqrt(p(1-p)/n)."""
    target = budget.ci_width * ctr if budget.relative else budget.ci_width
    return math.ceil((2 * z) ** 2 * ctr * (1 - ctr) / target**2)
