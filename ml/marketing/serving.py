"""The marketing layer of publishing: campaign re-ranking, then the new-item slot, on the
serving policy's slates, and what it reads before it sees them."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml.explore.context import FEATURES, ContextList
from ml.frames import member
from ml.marketing.campaigns import active_campaigns, arm, campaign_slates, load_campaigns
from ml.marketing.defaults import DEFAULT_NEW_ITEM_BUDGET
from ml.marketing.new_items import NewItemBudget, new_item_candidates, place_new_items
from ml.publish.shards import Shard
from ml.warehouse import Warehouse


@dataclass
class MarketingArgs:
    """The marketing layer's arguments of a publish run (see ``ml.publish.recommendations``)."""

    at: str | None = None
    campaigns: bool = True
    holdout_share: float | None = None
    new_item_budget: dict[str, Any] | None = None


@dataclass
class MarketingInputs:
    """What the marketing layer reads before it sees the slates: the item tags (item_id, tag:
    department, category, style and tier tags), the live campaigns, each live campaign's arm
    per user (campaign name -> (user ids, arms), for the users given), the new-item budget's
    settings (with ``max_age_days`` last, as the publish log records them), the budget (None
    when discovery is off) and the items still new under it."""

    item_tags: pd.DataFrame
    live: list[Any]
    user_arms: dict[str, tuple[np.ndarray, np.ndarray]]
    new_item_settings: dict[str, Any]
    new_item_budget: NewItemBudget | None
    fresh: list[str]


ITEM_TAG_COLUMNS = ["department_tag", "category_tag", "style_tag", "tier_tag"]


def long_item_tags(feats: pd.DataFrame, keep: Sequence[str] = ()) -> pd.DataFrame:
    """item_id, tag (and the ``keep`` columns) per tag of each item of ``marts.item_features``
    rows: its department, category, style and tier tag (missing ones left out)."""
    long = feats.melt(id_vars=["item_id", *keep], value_vars=ITEM_TAG_COLUMNS, value_name="tag")
    return long.dropna(subset=["tag"])[["item_id", "tag", *keep]]


def marketing_inputs(
    wh: Warehouse,
    at: pd.Timestamp,
    campaigns: bool = True,
    holdout_share: float | None = None,
    new_item_budget: dict[str, Any] | None = None,
    users: Sequence[str] | np.ndarray | None = None,
) -> MarketingInputs:
    """The :class:`MarketingInputs` of :func:`apply_marketing`'s arguments; ``users``: the users
    whose campaign arms are worked out here (the hashing is the costly part for 100k+ users).
    Opens a read-only connection only."""
    feats = wh.query(
        "select item_id, age_days, n_impressions, n_clicks, department_tag, category_tag, style_tag, tier_tag "
        "from marts.item_features"
    )
    item_tags = long_item_tags(feats)
    live = active_campaigns(load_campaigns(), at.to_pydatetime(), holdout_share) if campaigns else []
    user_arms: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if users is not None:
        ids = np.asarray(users, dtype=object)
        user_arms = {c.name: (ids, arm(ids, c)) for c in live}
    settings = {**DEFAULT_NEW_ITEM_BUDGET, **(new_item_budget or {})}
    max_age = float(settings.pop("max_age_days"))
    budget, fresh = None, []
    if float(settings.get("slot_probability", 0.0)) > 0.0:
        budget = NewItemBudget(**settings)
        fresh = new_item_candidates(feats, budget, max_age)["item_id"].astype(str).tolist()
    return MarketingInputs(item_tags, live, user_arms, {**settings, "max_age_days": max_age}, budget, fresh)


def apply_marketing(
    wh: Warehouse,
    slates: pd.DataFrame,
    policy: Any,
    contexts: Sequence[Any],
    arm_items: pd.DataFrame,
    k: int,
    day: str,
    n_draws: int,
    at: pd.Timestamp,
    campaigns: bool = True,
    holdout_share: float | None = None,
    new_item_budget: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    draws_cache: dict[str, Any] | None = None,
    prepared: MarketingInputs | None = None,
    excluded: pd.DataFrame | None = None,
    shard: Shard | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Campaign re-ranking, then the new-item slot, on the policy's slates (columns
    ``campaign`` and ``new_item`` added). Returns the rows and what was applied (for the
    publish log). ``draws_cache``: the slate draws ``build_slates`` kept, reused by campaigns;
    ``prepared``: :func:`marketing_inputs` of the same arguments when the caller read them
    already (it is read here otherwise); ``excluded``: (user_id, item_id) pairs the new-item
    slot never shows (items the user bought); ``shard``: the publish shard whose users the
    slates are (see ``ml.publish.recommendations``)."""
    if prepared is None:
        prepared = marketing_inputs(wh, at, campaigns, holdout_share, new_item_budget)
    live, item_tags = prepared.live, prepared.item_tags
    df = campaign_slates(
        slates, policy, contexts, k, day, n_draws, live, item_tags, labels, draws_cache, user_arms=prepared.user_arms
    )
    applied: dict[str, Any] = {"campaign_clock": str(at), "campaigns": [c.name for c in live]}

    budget, fresh = prepared.new_item_budget, prepared.fresh
    if budget is None:
        applied["new_items"] = {"enabled": False}
        return df.assign(new_item=False), applied
    user_tags, arm_features = _arm_lookup(ContextList.of(contexts).columns, FEATURES.index("weight"))
    shard = shard or Shard()
    # each shard draws from its own stream and spends its share of every item's daily cap
    stream = f"new-items|{day}" if shard.whole else f"new-items|{day}|{shard.name}"
    seed = int.from_bytes(hashlib.sha256(stream.encode()).digest()[:8], "little")
    df = place_new_items(
        df,
        user_tags,
        arm_items[["item_id", "tag"]],
        fresh,
        budget,
        seed,
        arm_features,
        excluded=excluded,
        cap_share=1.0 / shard.count,
    )
    applied["new_items"] = {"enabled": True, "candidates": len(fresh), "budget": prepared.new_item_settings}
    return df, applied


def _arm_lookup(cols: Any, weight: int) -> tuple[pd.DataFrame, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """From the contexts' columns: (user_id, tag) of every known arm or arm with a positive
    weight, and the ``arm_features`` text of given (user, tag) pairs (None where the user has
    no such arm), found through integer keys."""
    n_arms = np.diff(cols.arm_bounds)
    owner = np.repeat(np.arange(len(cols.users)), n_arms)
    users = np.asarray(cols.users, dtype=object)
    keep = np.asarray(cols.known, dtype=bool) | (cols.features[:, weight] > 0)
    user_tags = pd.DataFrame({"user_id": users[owner[keep]], "tag": cols.tags[keep]})
    user_index = pd.Index(users)
    tag_codes, tag_names = pd.factorize(cols.tags)
    tag_index = pd.Index(tag_names)
    n_tags = max(len(tag_names), 1)
    keys = owner.astype(np.int64) * n_tags + tag_codes
    order = np.argsort(keys, kind="stable")  # a user's arms hold a tag once; the first wins if not
    sorted_keys = keys[order]

    def arm_features(users_: np.ndarray, tags_: np.ndarray) -> np.ndarray:
        out = np.full(len(users_), None, dtype=object)
        if len(sorted_keys) == 0:
            return out
        u, t = user_index.get_indexer(users_), tag_index.get_indexer(tags_)
        key = u.astype(np.int64) * n_tags + t
        found, pos = member(key, sorted_keys)
        hit = (u >= 0) & (t >= 0) & found
        if hit.any():
            out[hit] = cols.features_json(order[pos[hit]])
        return out

    return user_tags, arm_features
