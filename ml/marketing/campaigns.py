"""Campaign windows: dated boosts of tags or items, capped at a share of slots, evaluated
honestly with a randomised holdout of users who see no boost.

Holdout membership is a deterministic hash of (campaign, user): the same user is in the same
arm on every publish run, and the report can recompute arms without extra state.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.explore.context import ContextColumns, ContextList
from ml.explore.slate import sample_slates, tag_label, user_seed
from ml.frames import isin, ranks

SPEC_DIR = Path(__file__).parent / "campaigns"
TREATMENT, HOLDOUT = "treatment", "holdout"
ROWS_PER_CHUNK = 50_000  # re-ranked slates per batch of users in campaign_slates


@dataclass
class Campaign:
    name: str
    start: datetime
    end: datetime
    boost_tags: list[str] = field(default_factory=list)
    boost_items: list[str] = field(default_factory=list)
    boost: float = 1.0  # boosted score = score * (1 + boost)
    max_share: float = 0.3  # at most this share of each user's k slots
    holdout_share: float = 0.1
    description: str = ""
    spend: float | None = None  # what the campaign cost (ads, discounts), in the shop's currency
    discount_percent: float | None = None  # the price cut the campaign offers (what its copy may say)
    copy_variants: int = 3  # marketing copy variants the treatment arm is split across

    def __post_init__(self) -> None:
        self.start = _naive_utc(self.start)
        self.end = _naive_utc(self.end)
        if self.end <= self.start:
            raise ValueError(f"campaign {self.name!r}: end {self.end} must be after start {self.start}")
        if not self.boost_tags and not self.boost_items:
            raise ValueError(f"campaign {self.name!r}: boost at least one tag or item")
        if not 0 < self.max_share <= 1:
            raise ValueError(f"campaign {self.name!r}: max_share must be in (0, 1]")
        if not 0 <= self.holdout_share < 1:
            raise ValueError(f"campaign {self.name!r}: holdout_share must be in [0, 1)")
        number = isinstance(self.spend, int | float) and not isinstance(self.spend, bool)
        if self.spend is not None and not (number and 0 < self.spend < float("inf")):
            raise ValueError(
                f"campaign {self.name!r}: spend must be a positive number (or left out), got {self.spend!r}"
            )
        discount = self.discount_percent
        if discount is not None and (isinstance(discount, bool) or not isinstance(discount, int | float)):
            raise ValueError(f"campaign {self.name!r}: discount_percent must be a number, got {discount!r}")
        if discount is not None and not 0 < discount < 100:
            raise ValueError(f"campaign {self.name!r}: discount_percent must be in (0, 100), got {discount!r}")
        if isinstance(self.copy_variants, bool) or not isinstance(self.copy_variants, int) or self.copy_variants < 1:
            raise ValueError(f"campaign {self.name!r}: copy_variants must be a whole number >= 1")

    @property
    def title(self) -> str:
        """The campaign's name as words ("winter_outdoor_sale" -> "Winter outdoor sale")."""
        return self.name.replace("_", " ").strip().capitalize()

    def active(self, at: datetime) -> bool:
        return bool(self.start <= _naive_utc(at) < self.end)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Campaign:
        return cls(**d)


def _naive_utc(value: Any) -> datetime:
    """A timestamp as naive UTC (the warehouse's convention)."""
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.to_pydatetime()


def load_campaigns(folder: Path = SPEC_DIR) -> dict[str, Campaign]:
    import yaml

    out: dict[str, Campaign] = {}
    for path in sorted(folder.glob("*.yml")):
        try:
            c = Campaign.from_dict(yaml.safe_load(path.read_text()))
        except (TypeError, ValueError, yaml.YAMLError) as exc:
            raise ValueError(f"{path}: invalid campaign: {exc}") from exc
        out[c.name] = c
    return out


def arm(user_ids: pd.Series | np.ndarray, campaign: Campaign) -> np.ndarray:
    """'holdout' for a uniform pseudo-random ``holdout_share`` of users, else 'treatment'."""
    u = _user_hashes(user_ids, campaign.name) / 16**12
    return np.where(u < campaign.holdout_share, HOLDOUT, TREATMENT)


def _user_hashes(user_ids: pd.Series | np.ndarray, salt: str) -> np.ndarray:
    """A 48-bit hash of (salt, user) per user: the same user, the same number, on every run."""
    return np.array(
        [int(hashlib.sha256(f"{salt}|{x}".encode()).hexdigest()[:12], 16) for x in user_ids], dtype=np.int64
    )


def copy_variant(user_ids: pd.Series | np.ndarray, campaign: Campaign) -> np.ndarray:
    """The marketing copy variant (0 .. ``copy_variants`` - 1) each user is shown when in the
    treatment arm: a hash of (campaign, user) of its own, independent of the holdout draw, so the
    variants split the treatment arm evenly and each can be compared with the holdout."""
    return _user_hashes(user_ids, f"{campaign.name}|copy") % campaign.copy_variants


# ---- campaigns in the publish step ------------------------------------------------------------


def active_campaigns(
    campaigns: dict[str, Campaign], at: datetime, holdout_share: float | None = None
) -> list[Campaign]:
    """Campaigns whose window contains ``at``, in name order; ``holdout_share`` (a DAG Param)
    overrides every campaign's own holdout size when given."""
    out = [c for _, c in sorted(campaigns.items()) if c.active(at)]
    if holdout_share is not None:
        from dataclasses import replace

        out = [replace(c, holdout_share=float(holdout_share)) for c in out]
    return out


def boosted_items(campaign: Campaign, item_tags: pd.DataFrame) -> set[str]:
    """Items a campaign boosts: its listed items and every item carrying a boosted tag
    (``item_tags``: item_id, tag; any tag kind: cat:, style:, tier:)."""
    tagged = item_tags.loc[item_tags["tag"].isin(campaign.boost_tags), "item_id"].astype(str)
    return set(tagged) | {str(i) for i in campaign.boost_items}


def campaign_slates(
    slates: pd.DataFrame,
    policy: Any,
    contexts: Sequence[Any],
    k: int,
    day: str,
    n_draws: int,
    campaigns: list[Campaign],
    item_tags: pd.DataFrame,
    labels: dict[str, str] | None = None,
    draws_cache: dict[str, Any] | None = None,
    user_arms: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> pd.DataFrame:
    """Apply active campaigns to published slates (the rows of ``ml.explore.slate.build_slates``).

    Users in a campaign's holdout keep their slate. For a treatment user whose candidates hold
    a boosted item, the user's slate draws are reproduced (same seed per user and day) and every
    draw is re-ranked, all users' draws at once (:func:`_rerank_users`): exploration and empty
    slots keep their item (so ``is_exploration`` is unchanged); of the boosted items among the
    free slots' items and the user's candidates outside the slate, the ``floor(max_share * k)``
    best by slot value get that value x (1 + boost), the other boosted items keep their plain
    value (those outside the slate stay out), and the free slots are refilled best value first
    (ties by item code) from their own items and the promoted ones; ``campaign`` marks the rows
    holding a promoted item (``tests/marketing/reference_campaigns.py`` holds the same rule
    written one slate at a time). Then the propensity of each shown item is recomputed
    from the re-ranked draws: it stays the exact (or Monte Carlo) probability that this serving
    process shows that item at that slot. Adds the nullable column ``campaign``: the campaign
    that promoted the row's item, null on every other row. Outside every window the rows are
    returned unchanged (plus a null ``campaign``). ``draws_cache`` (user -> ``SlateDraws``, as
    filled by ``build_slates``) spares re-drawing a user's slates; the draws are the same either way.
    ``user_arms`` (campaign name -> (user ids, :func:`arm` of them)) spares hashing the users
    again when they are the contexts' users, in their order."""
    out = slates.assign(campaign=pd.Series([None] * len(slates), index=slates.index, dtype=object))
    if not campaigns or out.empty:
        return out
    contexts = ContextList.of(contexts)
    found = _FlatItems(contexts.columns)
    plans = [(c, boosted_items(c, item_tags), math.floor(c.max_share * k)) for c in campaigns]
    # users as codes in order of first appearance (the order the rows are returned in), and
    # each context's user among them (-1: the user has no published row)
    ucode, uniq = pd.factorize(out["user_id"])
    uindex = pd.Index(uniq)
    ctx_code = uindex.get_indexer(found.users)
    has = [_treated(found, c, boosted, cap, ctx_code >= 0, user_arms) for c, boosted, cap in plans]
    picked = np.flatnonzero(np.any([h for _, h in has], axis=0))
    if len(picked) == 0:
        return out
    is_picked = np.zeros(len(uniq), dtype=bool)
    is_picked[ctx_code[picked]] = True
    published = _Published(out[is_picked[ucode]])
    cache = draws_cache or {}
    cached = [cache.get(u) for u in found.users[picked].tolist()]
    exploit = policy.exploit_columns(contexts.columns)
    parts = []
    for start, stop in _chunks(cached, n_draws):
        sel = picked[start:stop]
        draws = [
            d
            if d is not None
            else sample_slates(policy, contexts[n], k, np.random.default_rng(user_seed(u, day)), n_draws)
            for n, u, d in zip(sel.tolist(), found.users[sel].tolist(), cached[start:stop], strict=True)
        ]
        reranked = _rerank_users(found, sel, draws, has, exploit, plans, k)
        parts.append(_new_rows(reranked, found, contexts.columns, published, list(out.columns), labels))
    return _merged(out, ucode, uindex, parts)


def _treated(
    found: _FlatItems,
    campaign: Campaign,
    boosted: set[str],
    cap: int,
    published: np.ndarray,
    user_arms: dict[str, tuple[np.ndarray, np.ndarray]] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """(boosted flag per item of ``found``, flag per context: published, in the campaign's
    treatment arm and with a boosted candidate)."""
    is_boosted = found.isin(boosted)
    if cap < 1:
        return is_boosted, np.zeros(len(found.users), dtype=bool)
    with_boosted = np.bincount(found.owner[is_boosted], minlength=len(found.users)) > 0
    return is_boosted, published & (_arms_of(campaign, found.users, user_arms) == TREATMENT) & with_boosted


def _chunks(cached: list[Any], n_draws: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of users holding about ``ROWS_PER_CHUNK`` re-ranked slates each (a cached
    deterministic draw is one slate, any other user ``n_draws``), so the padded arrays stay small."""
    start = 0
    while start < len(cached):
        rows, stop = 0, start
        while stop < len(cached) and (stop == start or rows < ROWS_PER_CHUNK):
            d = cached[stop]
            rows += 1 if d is not None and d.n_draws == 1 else max(int(n_draws), 1)
            stop += 1
        yield start, stop
        start = stop


def _merged(out: pd.DataFrame, ucode: np.ndarray, uindex: pd.Index, parts: list[pd.DataFrame]) -> pd.DataFrame:
    """The untouched users' rows and the re-ranked users' new rows, in the users' original order,
    slot by slot."""
    part_codes = [uindex.get_indexer(p["user_id"]) for p in parts]
    changed = np.zeros(len(uindex), dtype=bool)
    for pc in part_codes:
        changed[pc] = True
    kept_rows = ~changed[ucode]
    merged = pd.concat([out[kept_rows], *parts], ignore_index=True)
    # one null for "no campaign" whatever the batches held (a batch with no promoted item
    # would otherwise bring None where the others bring NaN)
    camp = merged["campaign"].astype(object)
    merged["campaign"] = camp.where(camp.notna(), None)
    user_order = np.concatenate([ucode[kept_rows], *part_codes])
    order = np.lexsort((merged["rank"].to_numpy(), user_order))  # a stable sort on (user, rank)
    return merged.iloc[order].reset_index(drop=True)


def _arms_of(
    campaign: Campaign, users: np.ndarray, known: dict[str, tuple[np.ndarray, np.ndarray]] | None
) -> np.ndarray:
    """:func:`arm` of ``users``, taken from ``known`` when it holds them for the same users."""
    have = (known or {}).get(campaign.name)
    if have is not None and len(have[0]) == len(users) and bool(np.all(have[0] == users)):
        return have[1]
    return arm(users, campaign)


class _FlatItems:
    """Every context's item ids (as ``str``) in code order, concatenated: context ``n`` owns
    ``flat[bounds[n]:bounds[n + 1]]`` and a context's code ``x`` is at ``bounds[n] + x``;
    ``owner``, ``tag`` (the arm's index within its context) and ``scores`` per item; context
    ``n``'s arms are rows ``arm_start[n]:arm_start[n + 1]`` of the columns;
    ``users``: the contexts' user ids."""

    def __init__(self, cols: ContextColumns):
        ab, ib = cols.arm_bounds, cols.item_bounds
        self.users = np.asarray(cols.users, dtype=object)
        self.bounds = ib[ab].astype(np.int64)
        self.arm_start = np.asarray(ab, dtype=np.int64)
        ids = cols.item_ids
        is_str = len(ids) == 0 or pd.api.types.infer_dtype(ids, skipna=False) == "string"
        self.flat = ids if is_str else np.array([str(x) for x in ids.tolist()], dtype=object)
        self.owner = np.repeat(np.arange(len(cols.users)), np.diff(ib[ab]))
        local_arm = ranks(np.diff(ab))
        self.tag = np.repeat(local_arm, np.diff(ib)).astype(np.int64)
        self.scores = np.asarray(cols.item_scores, dtype=np.float64)

    def isin(self, items: set[str]) -> np.ndarray:
        return isin(self.flat, items) if len(self.flat) else np.zeros(0, dtype=bool)


class _Published:
    """The published rows of the re-ranked users, found by (user, item), and each user's first row."""

    def __init__(self, rows: pd.DataFrame):
        self.rows = rows
        self.key = pd.MultiIndex.from_arrays([rows["user_id"].astype(str), rows["item_id"].astype(str)])
        self.first = pd.Series(np.arange(len(rows)), index=rows["user_id"].to_numpy()).groupby(level=0).first()


def _boosted_items(
    found: _FlatItems, boosted: np.ndarray, sel: np.ndarray, exploit: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The boosted items of the contexts ``sel`` as padded (W, B) arrays: their codes within the
    context (ascending, -1 padding) and their values (the arm's greedy value x the item's score,
    -inf padding). ``boosted``: flag per item of ``found``; ``exploit``: the greedy value per
    arm row of the contexts' columns."""
    where_sel = np.full(len(found.users), -1, dtype=np.int64)
    where_sel[sel] = np.arange(len(sel))
    flat = np.flatnonzero(boosted)
    w = where_sel[found.owner[flat]]
    flat, w = flat[w >= 0], w[w >= 0]  # (in item order, so by row and code)
    per_row = np.bincount(w, minlength=len(sel))
    width = max(int(per_row.max(initial=0)), 1)
    slot = ranks(per_row)
    code = np.full((len(sel), width), -1, dtype=np.int64)
    value = np.full((len(sel), width), -np.inf)
    code[w, slot] = flat - found.bounds[sel][w]
    value[w, slot] = exploit[found.arm_start[sel][w] + found.tag[flat]] * found.scores[flat]
    return code, value


@dataclass
class _Reranked:
    """The re-ranked slates of the users ``sel`` (shapes (W, k)): item codes, values, the
    campaign (index into the plans, -1 none) that promoted each slot's item, propensity and its
    standard error."""

    sel: np.ndarray
    items: np.ndarray
    scores: np.ndarray
    campaign: np.ndarray
    propensity: np.ndarray
    propensity_se: np.ndarray
    names: np.ndarray  # campaign names by index, None last (index -1)


def _rerank_users(
    found: _FlatItems,
    sel: np.ndarray,
    draws: list[Any],
    has: list[tuple[np.ndarray, np.ndarray]],
    exploit: np.ndarray,
    plans: list[tuple[Campaign, set[str], int]],
    k: int,
) -> _Reranked:
    """The campaigns' re-rank (:func:`campaign_slates`) of every draw of the contexts ``sel`` at once.

    ``draws``: the users' ``SlateDraws`` (row 0 shown); ``has``: per campaign of ``plans``,
    (boosted flag per item of ``found``, treated-with-a-boosted-item flag per context);
    ``exploit``: the policy's greedy value per arm row of the contexts' columns. Each distinct
    draw of a user is re-ranked once; the propensity of a shown item is the share of the user's
    re-ranked draws with that item at that slot."""
    distinct = [_distinct_rows(d.items) for d in draws]
    n_uniq = np.array([len(first) for first, _ in distinct], dtype=np.int64)
    user = np.repeat(np.arange(len(sel)), n_uniq)  # the user of each re-ranked row
    its = np.concatenate([d.items[f] for d, (f, _) in zip(draws, distinct, strict=True)]).astype(np.int64)
    scs = np.concatenate([d.scores[f] for d, (f, _) in zip(draws, distinct, strict=True)]).astype(np.float64)
    fixed = np.concatenate([d.explore[f] for d, (f, _) in zip(draws, distinct, strict=True)]) | (its < 0)
    width = int((found.bounds[sel + 1] - found.bounds[sel]).max())
    who = np.full((len(its), width), -1, dtype=np.int64)
    for ci, (c, _, cap) in enumerate(plans):
        rows = np.flatnonzero(has[ci][1][sel][user])
        if len(rows) == 0 or cap < 1:
            continue
        codes, values = _boosted_items(found, has[ci][0], sel, exploit)
        _rerank_rows(its, scs, fixed, who, rows, codes[user[rows]], values[user[rows]], cap, c.boost, ci, width)
    # per user: the shown slate (its draw 0) and each slot's share of the re-ranked draws
    first_row = np.r_[0, np.cumsum(n_uniq)[:-1]]
    row0 = first_row + np.array([int(inv[0]) for _, inv in distinct], dtype=np.int64)
    prop, se = np.ones((len(sel), k)), np.zeros((len(sel), k))
    for w in np.flatnonzero([d.items.shape[0] > 1 for d in draws]).tolist():
        all_draws = its[first_row[w] + distinct[w][1]]
        prop[w] = (all_draws == all_draws[:1]).mean(axis=0)
        se[w] = np.sqrt(prop[w] * (1.0 - prop[w]) / len(all_draws))
    shown = its[row0]
    campaign = np.take_along_axis(who[row0], np.maximum(shown, 0), axis=1)
    names = np.array([c.name for c, _, _ in plans] + [None], dtype=object)
    return _Reranked(sel, shown, scs[row0], np.where(shown >= 0, campaign, -1), prop, se, names)


def _distinct_rows(items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first row of each distinct draw, each draw's distinct index): a user's draws often
    repeat the same slate, which is re-ranked once."""
    if items.shape[0] == 1:
        return np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64)
    _, first, inverse = np.unique(items, axis=0, return_index=True, return_inverse=True)
    return first, np.asarray(inverse).ravel()


def _rerank_rows(
    its: np.ndarray,
    scs: np.ndarray,
    fixed: np.ndarray,
    who: np.ndarray,
    rows: np.ndarray,
    boosted_code: np.ndarray,
    boosted_value: np.ndarray,
    cap: int,
    boost: float,
    campaign: int,
    width: int,
) -> None:
    """One campaign's re-rank on the slates ``rows`` of ``its``/``scs`` (in place;
    ``who`` marks the items it promoted). Only a row's free slots and its user's boosted items
    (``boosted_code``/``boosted_value``, (R, B)) can move, so each row is re-ranked over those."""
    slot_items, values, free = its[rows], scs[rows], ~fixed[rows] & (its[rows] >= 0)
    best_code, best_value = _best_boosted(slot_items, values, free, boosted_code, boosted_value, cap)
    ok = np.isfinite(best_value)
    # the pool: the free slots' items (promoted ones at their boosted value), then the promoted
    # items from outside the slate
    pool_code = np.where(free, slot_items, -1)
    pool_value = np.where(free, values, -np.inf)
    pool_promoted = np.zeros(free.shape, dtype=bool)
    extra_code = np.full(best_code.shape, -1, dtype=np.int64)
    extra_value = np.full(best_code.shape, -np.inf)
    for j in range(best_code.shape[1]):
        hit = (pool_code == best_code[:, j : j + 1]) & ok[:, j : j + 1]
        pool_value = np.where(hit, pool_value * (1.0 + boost), pool_value)
        pool_promoted |= hit
        outside = ok[:, j] & ~hit.any(axis=1)
        extra_code[:, j] = np.where(outside, best_code[:, j], -1)
        extra_value[:, j] = np.where(outside, best_value[:, j] * (1.0 + boost), -np.inf)
    all_code = np.concatenate([pool_code, extra_code], axis=1)
    all_value = np.concatenate([pool_value, extra_value], axis=1)
    all_promoted = np.concatenate([pool_promoted, extra_code >= 0], axis=1)
    # best value first, ties by lower code, empty entries last; free slots refilled in that order
    valid = all_code >= 0
    ranked = np.lexsort((np.where(valid, all_code, width), np.where(valid, -all_value, np.inf)), axis=1)
    nth_free = np.cumsum(free, axis=1) - 1
    r, slot = np.nonzero(free)
    pick = ranked[r, nth_free[r, slot]]
    codes = all_code[r, pick]
    slot_items[r, slot] = codes
    values[r, slot] = all_value[r, pick]
    moved = all_promoted[r, pick]
    who_rows = who[rows]
    who_rows[r[moved], codes[moved]] = campaign
    who[rows] = who_rows
    its[rows], scs[rows] = slot_items, values


def _best_boosted(
    slot_items: np.ndarray,
    values: np.ndarray,
    free: np.ndarray,
    boosted_code: np.ndarray,
    boosted_value: np.ndarray,
    cap: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(codes, values) of the ``cap`` best boosted items per row: one in a free slot at its slot
    value, one outside the slate at its own value (one in a fixed slot stays put); ties: lower
    code first; -inf where a row has fewer."""
    shown = np.zeros(boosted_code.shape, dtype=bool)
    in_free = np.zeros(boosted_code.shape, dtype=bool)
    free_value = np.full(boosted_code.shape, -np.inf)
    for j in range(slot_items.shape[1]):
        at_j = (boosted_code == slot_items[:, j : j + 1]) & (boosted_code >= 0)
        shown |= at_j
        at_free = at_j & free[:, j : j + 1]
        in_free |= at_free
        free_value = np.where(at_free, values[:, j : j + 1], free_value)
    cand = np.where(in_free, free_value, np.where(shown, -np.inf, boosted_value))
    best = np.argsort(-cand, axis=1, kind="stable")[:, :cap]
    r = np.arange(len(cand))[:, None]
    return boosted_code[r, best], cand[r, best]


def _new_rows(
    reranked: _Reranked,
    found: _FlatItems,
    cols: ContextColumns,
    published: _Published,
    columns: list[str],
    labels: dict[str, str] | None,
) -> pd.DataFrame:
    """The re-ranked users' rows: each copies the user's published row of the same item (a
    promoted one's reason prefixed ``featured:``), or for an item the plain slate did not show
    the user's first row with the item's arm, a ``featured`` reason and no exploration flag."""
    sel = reranked.sel
    ww, jj = np.nonzero(reranked.items >= 0)
    codes = reranked.items[ww, jj]
    items = found.flat[found.bounds[sel[ww]] + codes]
    users = found.users[sel][ww]
    camp = reranked.names[reranked.campaign[ww, jj]]  # index -1 -> None
    pos = published.key.get_indexer(pd.MultiIndex.from_arrays([users.astype(str), items.astype(str)]))
    src = np.where(pos >= 0, pos, published.first.reindex(users).to_numpy())
    new = published.rows.iloc[src].reset_index(drop=True).copy()
    new["item_id"] = items
    new["rank"] = jj + 1
    new["score"] = reranked.scores[ww, jj]
    new["propensity"] = reranked.propensity[ww, jj]
    new["propensity_se"] = reranked.propensity_se[ww, jj]
    new["campaign"] = camp
    reason = new["reason"].to_numpy(dtype=object).copy()
    kept_promoted = (pos >= 0) & (camp != None)  # noqa: E711 (element-wise)
    reason[kept_promoted] = ["featured: " + str(x) for x in reason[kept_promoted]]
    absent = np.flatnonzero(pos < 0)
    if len(absent):
        arm = cols.arm_bounds[sel[ww[absent]]] + found.tag[found.bounds[sel[ww[absent]]] + codes[absent]]
        tags = cols.tags[arm]
        text = {t: f"featured: {tag_label(t, labels)}" for t in set(tags.tolist())}
        reason[absent] = [text[t] for t in tags.tolist()]
        for name, values in (
            ("reason_tag", tags),
            ("arm_features", cols.features_json(arm)),
            ("is_exploration", False),
        ):
            column = new[name].to_numpy().copy()
            column[absent] = values
            new[name] = column
    new["reason"] = reason
    return new[columns]
