"""Campaign windows: dated boosts of tags or items, capped at a share of slots, evaluated
honestly with a randomised holdout of users who see no boost.

Holdout membership is a deterministic hash of (campaign, user): the same user is in the same
arm on every publish run, and the report can recompute arms without extra state.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.explore.context import arm_features_json_rows
from ml.explore.slate import sample_slates, tag_label, user_seed
from ml.frames import isin

SPEC_DIR = Path(__file__).parent / "campaigns"
TREATMENT, HOLDOUT, NONE = "treatment", "holdout", "none"
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
    u = np.array([int(hashlib.sha256(f"{campaign.name}|{x}".encode()).hexdigest()[:12], 16) / 16**12 for x in user_ids])
    return np.where(u < campaign.holdout_share, HOLDOUT, TREATMENT)


def apply_campaign(
    candidates: pd.DataFrame, item_tags: pd.DataFrame, campaign: Campaign, at: datetime, k: int
) -> pd.DataFrame:
    """Re-rank each user's candidates (user_id, item_id, score; more than k per user is best)
    into a top-k. Outside the window nothing changes (arm 'none'); holdout users get the plain
    ranking; treatment users get boosted items' scores raised, but boosted items take at most
    ``floor(max_share * k)`` slots. Returns user_id, item_id, score, rank, campaign_arm,
    campaign_boosted."""
    c = candidates.copy()
    tagged = set(item_tags.loc[item_tags["tag"].isin(campaign.boost_tags), "item_id"]) | set(campaign.boost_items)
    c["campaign_boosted"] = c["item_id"].isin(tagged)
    if not campaign.active(at):
        c["campaign_arm"] = NONE
        c["campaign_boosted"] = False
        return _top(c, k, cap=None)
    users = c["user_id"].drop_duplicates()
    arms = pd.Series(arm(users.to_numpy(), campaign), index=users.to_numpy())
    c["campaign_arm"] = c["user_id"].map(arms)
    treat = c["campaign_arm"] == TREATMENT
    c.loc[~treat, "campaign_boosted"] = False
    c.loc[treat & c["campaign_boosted"], "score"] *= 1.0 + campaign.boost
    return _top(c, k, cap=math.floor(campaign.max_share * k))


def _top(c: pd.DataFrame, k: int, cap: int | None) -> pd.DataFrame:
    c = c.sort_values(["user_id", "score", "item_id"], ascending=[True, False, True], kind="stable")
    if cap is not None:
        nth_boosted = c.groupby("user_id")["campaign_boosted"].cumsum()
        c = c[~c["campaign_boosted"] | (nth_boosted <= cap)]
    c = c.groupby("user_id", sort=False).head(k).copy()
    c["rank"] = c.groupby("user_id").cumcount() + 1
    return c.reset_index(drop=True)


@dataclass
class UpliftReport:
    campaign: str
    metric: str
    treatment_users: int
    holdout_users: int
    treatment_mean: float
    holdout_mean: float
    uplift: float
    ci_low: float
    ci_high: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def uplift(per_user: pd.DataFrame, campaign: Campaign, metric: str, n_boot: int = 2000, seed: int = 0) -> UpliftReport:
    """Difference in mean ``metric`` per user (treatment - holdout) with a 95% bootstrap CI.
    ``per_user`` has one row per exposed user: user_id and the metric columns (0 when none)."""
    arms = arm(per_user["user_id"].to_numpy(), campaign)
    t = per_user.loc[arms == TREATMENT, metric].to_numpy(float)
    h = per_user.loc[arms == HOLDOUT, metric].to_numpy(float)
    if len(t) == 0 or len(h) == 0:
        raise ValueError(f"campaign {campaign.name!r}: need users in both arms (treatment {len(t)}, holdout {len(h)})")
    rng = np.random.default_rng(seed)
    bt = rng.choice(t, (n_boot, len(t))).mean(axis=1)
    bh = rng.choice(h, (n_boot, len(h))).mean(axis=1)
    diff = bt - bh
    lo, hi = np.quantile(diff, [0.025, 0.975])
    return UpliftReport(
        campaign.name,
        metric,
        len(t),
        len(h),
        float(t.mean()),
        float(h.mean()),
        float(t.mean() - h.mean()),
        float(lo),
        float(hi),
    )


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


def rerank_slate(
    items: np.ndarray,
    scores: np.ndarray,
    fixed: np.ndarray,
    boosted: set[int],
    extra: dict[int, float],
    boost: float,
    cap: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One slate of k slots re-ranked for one campaign.

    ``items`` (k,) item codes (-1 empty), ``scores`` (k,) their slot values, ``fixed`` (k,) slots
    that keep their item (exploration slots, empty slots); ``boosted`` codes the campaign boosts;
    ``extra`` boosted codes of the user's candidates that are not in the slate, with the value
    they would have in it. The ``cap`` best boosted items (by boosted value) get their value x
    (1 + boost); other boosted items keep their plain value (and those outside the slate stay
    out). The free slots are refilled, best value first, from their own items and the promoted
    ones. Returns (items, values, promoted) of shape (k,); ``promoted`` marks the slots holding
    an item this campaign promoted."""
    free = np.flatnonzero(~fixed & (items >= 0))
    pool: dict[int, float] = {int(items[j]): float(scores[j]) for j in free}
    in_fixed = {int(c) for c in items[fixed]}
    cands = {c: v for c, v in pool.items() if c in boosted}
    cands.update({c: v for c, v in extra.items() if c not in pool and c not in in_fixed})
    ranked = sorted(cands.items(), key=lambda cv: (-cv[1], cv[0]))[: max(cap, 0)]
    promoted = {c for c, _ in ranked}
    for c, v in ranked:
        pool[c] = v * (1.0 + boost)
    order = sorted(pool.items(), key=lambda cv: (-cv[1], cv[0]))[: len(free)]
    out_items, out_scores = items.copy(), scores.astype(float).copy()
    touched = np.zeros(len(items), dtype=bool)
    for j, (c, v) in zip(free, order, strict=False):
        out_items[j], out_scores[j], touched[j] = c, v, c in promoted
    return out_items, out_scores, touched


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
    a boosted item, the user's slate draws are reproduced (same seed per user and day), every
    draw is re-ranked as :func:`rerank_slate` defines it, all users' draws at once
    (:func:`_rerank_users`; exploration slots stay where the policy put them,
    so ``is_exploration`` is unchanged), and the propensity of each shown item is recomputed
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
    plans = [(c, boosted_items(c, item_tags), math.floor(c.max_share * k)) for c in campaigns]
    columns = list(out.columns)
    # who has a boosted candidate in a campaign it is treated by: every context's items as one
    # flat column, one membership test per campaign
    found = _FlatItems(contexts)
    # users as codes in order of first appearance (the order the rows are returned in), and
    # each context's user among them (-1: the user has no published row)
    ucode, uniq = pd.factorize(out["user_id"])
    uindex = pd.Index(uniq)
    ctx_users = found.users
    ctx_code = uindex.get_indexer(ctx_users)
    # a user is treated by a campaign when it has published rows and is not in its holdout
    has = []
    for c, items, cap in plans:
        boosted = found.isin(items)
        in_c = (
            (ctx_code >= 0) & (_arms_of(c, ctx_users, user_arms) == TREATMENT)
            if cap >= 1
            else np.zeros(len(ctx_users), bool)
        )
        has.append((boosted, in_c & (np.bincount(found.owner[boosted], minlength=len(contexts)) > 0)))
    picked = np.flatnonzero(np.any([h for _, h in has], axis=0)) if has else np.zeros(0, dtype=np.int64)
    if len(picked) == 0:
        return out
    is_picked = np.zeros(len(uniq), dtype=bool)
    is_picked[ctx_code[picked]] = True
    touched = out[is_picked[ucode]]
    cache = draws_cache or {}
    # the published rows of the users re-ranked, found by (user, item), and each user's first row
    old_key = pd.MultiIndex.from_arrays([touched["user_id"].astype(str), touched["item_id"].astype(str)])
    first = pd.Series(np.arange(len(touched)), index=touched["user_id"].to_numpy()).groupby(level=0).first()
    parts = []
    # users in chunks of about ROWS_PER_CHUNK re-ranked slates (the padded arrays stay small)
    cached = [cache.get(u) for u in found.users[picked].tolist()]
    start = 0
    while start < len(picked):
        rows_so_far, stop = 0, start
        while stop < len(picked) and (stop == start or rows_so_far < ROWS_PER_CHUNK):
            d = cached[stop]
            rows_so_far += 1 if d is not None and d.n_draws == 1 else max(int(n_draws), 1)
            stop += 1
        sel = picked[start:stop]
        draws = []
        for n, d in zip(sel.tolist(), cached[start:stop], strict=True):
            if d is None:
                rng = np.random.default_rng(user_seed(contexts[n].user_id, day))
                d = sample_slates(policy, contexts[n], k, rng, n_draws)
            draws.append(d)
        parts.append(
            _rerank_users(
                found, contexts, sel, draws, has, policy, plans, (touched, old_key, first), columns, k, labels
            )
        )
        start = stop
    part_codes = [uindex.get_indexer(p["user_id"]) for p in parts]
    changed = np.zeros(len(uniq), dtype=bool)
    for pc in part_codes:
        changed[pc] = True
    kept_rows = ~changed[ucode]
    keep = out[kept_rows]
    merged = pd.concat([keep, *parts], ignore_index=True)
    # one null for "no campaign" whatever the batches held (a batch with no promoted item
    # would otherwise bring None where the others bring NaN)
    camp = merged["campaign"].astype(object)
    merged["campaign"] = camp.where(camp.notna(), None)
    # back in the users' original order, slot by slot (a stable sort on (user code, rank))
    user_order = np.concatenate([ucode[kept_rows], *part_codes])
    order = np.lexsort((merged["rank"].to_numpy(), user_order))
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
    ``users``: the contexts' user ids."""

    def __init__(self, contexts: Sequence[Any]):
        cols = getattr(contexts, "columns", None)
        if cols is not None and len(cols.users) == len(contexts):
            self.users = np.asarray(cols.users, dtype=object)
            self._from_columns(cols)
            return
        self.users = np.array([ctx.user_id for ctx in contexts], dtype=object)
        lists = [a for ctx in contexts for a in ctx.items]
        sizes = np.array([sum(len(a) for a in ctx.items) for ctx in contexts], dtype=np.int64)
        self.bounds = np.r_[0, np.cumsum(sizes)].astype(np.int64).tolist()
        joined = np.concatenate(lists) if lists else np.array([], dtype=object)
        self.flat = np.array([str(x) for x in joined.tolist()], dtype=object)
        self.owner = np.repeat(np.arange(len(contexts)), sizes)
        # per item: its tag's index within its context, and its score
        n_tags = np.array([len(ctx.items) for ctx in contexts], dtype=np.int64)
        first_tag = np.repeat(np.r_[0, np.cumsum(n_tags)[:-1]], n_tags)
        local_tag = np.arange(int(n_tags.sum())) - first_tag
        self.tag = np.repeat(local_tag, [len(a) for a in lists]).astype(np.int64)
        score_lists = [np.asarray(sc, dtype=np.float64) for ctx in contexts for sc in ctx.item_scores]
        self.scores = np.concatenate(score_lists) if score_lists else np.zeros(0)

    def _from_columns(self, cols: Any) -> None:
        """The same arrays read from :class:`~ml.explore.context.ContextColumns`."""
        ab, ib = cols.arm_bounds, cols.item_bounds
        self.bounds = ib[ab].astype(np.int64).tolist()
        ids = cols.item_ids
        is_str = len(ids) == 0 or pd.api.types.infer_dtype(ids, skipna=False) == "string"
        self.flat = ids if is_str else np.array([str(x) for x in ids.tolist()], dtype=object)
        self.owner = np.repeat(np.arange(len(cols.users)), np.diff(ib[ab]))
        per_arm = np.diff(ib)
        local_tag = np.arange(len(per_arm)) - np.repeat(ab[:-1], np.diff(ab))
        self.tag = np.repeat(local_tag, per_arm).astype(np.int64)
        self.scores = np.asarray(cols.item_scores, dtype=np.float64)

    def isin(self, items: set[str]) -> np.ndarray:
        return isin(self.flat, items) if len(self.flat) else np.zeros(0, dtype=bool)


def _boosted_items(
    found: _FlatItems,
    boosted: np.ndarray,
    where_sel: np.ndarray,
    starts: np.ndarray,
    exploit: np.ndarray,
    tag_start: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The boosted items of the selected contexts as padded (W, B) arrays: their codes within
    the context (ascending, -1 padding) and their values (the tag's exploitation value x the
    item's score, -inf padding). ``boosted``: flag per item of ``found``; ``where_sel``: each
    context's row (-1: not selected); ``starts``: each row's first item in ``found``;
    ``exploit``/``tag_start``: the rows' exploitation values per tag and each row's first."""
    flat = np.flatnonzero(boosted)
    w = where_sel[found.owner[flat]]
    flat, w = flat[w >= 0], w[w >= 0]  # (in item order, so by row and code)
    W = len(starts)
    per_row = np.bincount(w, minlength=W)
    width = max(int(per_row.max(initial=0)), 1)
    slot = np.arange(len(w)) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    code = np.full((W, width), -1, dtype=np.int64)
    value = np.full((W, width), -np.inf)
    code[w, slot] = flat - starts[w]
    value[w, slot] = exploit[tag_start[w] + found.tag[flat]] * found.scores[flat]
    return code, value


def _rerank_users(
    found: _FlatItems,
    contexts: Sequence[Any],
    sel: np.ndarray,
    draws: list[Any],
    has: list[tuple[np.ndarray, np.ndarray]],
    policy: Any,
    plans: list[tuple[Campaign, set[str], int]],
    published: tuple[pd.DataFrame, pd.MultiIndex, pd.Series],
    columns: list[str],
    k: int,
    labels: dict[str, str] | None,
) -> pd.DataFrame:
    """:func:`rerank_slate` on every draw of the contexts ``sel`` at once, and their new rows.

    ``draws``: the users' ``SlateDraws`` (row 0 shown); ``has``: per campaign of ``plans``,
    (boosted flag per item of ``found``, treated-with-a-boosted-item flag per context);
    ``published``: the users' published rows, their (user, item) index and each user's first
    row's position. Each
    distinct draw of a user is re-ranked once, as a row of padded arrays over the draw's free
    slots and the user's boosted items (only those can move: k + B columns, not every item of
    the context); the propensity of a shown item is the share
    of the user's re-ranked draws with that item at that slot. The new rows copy the user's
    published row of the same item, or for an item the plain slate did not show the user's
    first row with a ``featured`` reason."""
    # with the contexts' columns, no context object is read (only their per-arm rows)
    cols = getattr(contexts, "columns", None)
    if cols is not None and len(cols.users) != len(contexts):
        cols = None
    W = len(sel)
    bounds = np.asarray(found.bounds, dtype=np.int64)
    starts = bounds[sel]
    sizes = bounds[sel + 1] - starts
    N = int(sizes.max())
    # value of every item: its tag's exploitation value x its score (as rerank_slate's ``extra``)
    col_vals = policy.column_values(cols) if cols is not None else None
    if cols is not None and col_vals is not None:  # the same values, read from the contexts' columns
        ab = cols.arm_bounds
        n_tags = np.diff(ab)[sel]
        tag_start = np.r_[0, np.cumsum(n_tags)[:-1]].astype(np.int64)
        arm_rows = np.repeat(ab[sel] - tag_start, n_tags) + np.arange(int(n_tags.sum()))
        ex_all = np.asarray(col_vals[1], dtype=np.float64)[arm_rows]
    else:
        exploits = [np.asarray(policy.exploit_values(contexts[n]), dtype=np.float64) for n in sel.tolist()]
        n_tags = np.array([len(e) for e in exploits], dtype=np.int64)
        tag_start = np.r_[0, np.cumsum(n_tags)[:-1]]
        ex_all = np.concatenate(exploits) if exploits else np.zeros(0)
    where_sel = np.full(len(found.users), -1, dtype=np.int64)  # each context's position in ``sel``
    where_sel[sel] = np.arange(W)
    # the distinct draws of each user (a user's draws often repeat the same slate)
    firsts, inverses = [], []
    for d in draws:
        if d.items.shape[0] == 1:
            firsts.append(np.zeros(1, dtype=np.int64))
            inverses.append(np.zeros(1, dtype=np.int64))
        else:
            _, first, inverse = np.unique(d.items, axis=0, return_index=True, return_inverse=True)
            firsts.append(first)
            inverses.append(np.asarray(inverse).ravel())
    n_uniq = np.array([len(f) for f in firsts], dtype=np.int64)
    user = np.repeat(np.arange(W), n_uniq)  # the user of each re-ranked row
    its = np.concatenate([d.items[f] for d, f in zip(draws, firsts, strict=True)]).astype(np.int64)
    scs = np.concatenate([d.scores[f] for d, f in zip(draws, firsts, strict=True)]).astype(np.float64)
    fixed = np.concatenate([d.explore[f] for d, f in zip(draws, firsts, strict=True)]) | (its < 0)
    who = np.full((len(its), N), -1, dtype=np.int64)  # campaign (index into plans) that promoted the item
    for ci, (c, _, cap) in enumerate(plans):
        rows = np.flatnonzero(has[ci][1][sel][user])
        if len(rows) == 0 or cap < 1:
            continue
        # only a row's free slots and its user's boosted items can move, so each row is re-ranked
        # over those (k + the user's boosted items) rather than over all N items of its context
        b_code, b_val = _boosted_items(found, has[ci][0], where_sel, starts, ex_all, tag_start)
        bc, bv = b_code[user[rows]], b_val[user[rows]]  # (R, B): boosted item codes, their values
        slot_items, S, F = its[rows], scs[rows], fixed[rows]
        free = ~F & (slot_items >= 0)
        # per boosted item: shown in the slate at all, held in a free slot, and that slot's value
        shown = np.zeros(bc.shape, dtype=bool)
        in_free = np.zeros(bc.shape, dtype=bool)
        free_val = np.full(bc.shape, -np.inf)
        for j in range(slot_items.shape[1]):
            at_j = (bc == slot_items[:, j : j + 1]) & (bc >= 0)
            shown |= at_j
            at_free = at_j & free[:, j : j + 1]
            in_free |= at_free
            free_val = np.where(at_free, S[:, j : j + 1], free_val)
        # the cap best boosted items: a free slot's at its slot value, one outside the slate at
        # its own value (a boosted item in a fixed slot stays put); ties: lower code first
        cand = np.where(in_free, free_val, np.where(shown, -np.inf, bv))
        best = np.argsort(-cand, axis=1, kind="stable")[:, :cap]
        r2 = np.arange(len(rows))[:, None]
        best_code, best_val = bc[r2, best], cand[r2, best]
        ok = np.isfinite(best_val)
        # the pool: the free slots' items (promoted ones at their boosted value), then the
        # promoted items from outside the slate
        pool_code = np.where(free, slot_items, -1)
        pool_val = np.where(free, S, -np.inf)
        pool_promoted = np.zeros(free.shape, dtype=bool)
        extra_code = np.full(best.shape, -1, dtype=np.int64)
        extra_val = np.full(best.shape, -np.inf)
        for j in range(best.shape[1]):
            hit = (pool_code == best_code[:, j : j + 1]) & ok[:, j : j + 1]
            pool_val = np.where(hit, pool_val * (1.0 + c.boost), pool_val)
            pool_promoted |= hit
            outside = ok[:, j] & ~hit.any(axis=1)
            extra_code[:, j] = np.where(outside, best_code[:, j], -1)
            extra_val[:, j] = np.where(outside, best_val[:, j] * (1.0 + c.boost), -np.inf)
        all_code = np.concatenate([pool_code, extra_code], axis=1)
        all_val = np.concatenate([pool_val, extra_val], axis=1)
        all_promoted = np.concatenate([pool_promoted, extra_code >= 0], axis=1)
        # best value first, ties by lower code (as over the N items), empty entries last
        valid = all_code >= 0
        ranked = np.lexsort((np.where(valid, all_code, N), np.where(valid, -all_val, np.inf)), axis=1)
        m = np.cumsum(free, axis=1) - 1  # a free slot's place among the row's free slots
        rr, jj = np.nonzero(free)
        pick = ranked[rr, m[rr, jj]]
        codes = all_code[rr, pick]
        slot_items[rr, jj] = codes
        S[rr, jj] = all_val[rr, pick]
        moved = all_promoted[rr, pick]
        who_rows = who[rows]
        who_rows[rr[moved], codes[moved]] = ci
        who[rows] = who_rows
        its[rows], scs[rows] = slot_items, S
    # per user: the shown slate (its draw 0) and each slot's share of the re-ranked draws
    row0 = np.r_[0, np.cumsum(n_uniq)[:-1]] + np.array([int(inv[0]) for inv in inverses], dtype=np.int64)
    prop = np.ones((W, k))
    se = np.zeros((W, k))
    for w in np.flatnonzero(np.array([d.items.shape[0] > 1 for d in draws], dtype=bool)).tolist():
        lo = row0[w] - int(inverses[w][0])
        all_draws = its[lo + inverses[w]]
        prop[w] = (all_draws == all_draws[:1]).mean(axis=0)
        se[w] = np.sqrt(prop[w] * (1.0 - prop[w]) / len(all_draws))
    shown_items, shown_scores = its[row0], scs[row0]
    ww, jj = np.nonzero(shown_items >= 0)
    codes = shown_items[ww, jj]
    items = found.flat[starts[ww] + codes]
    users = found.users[sel][ww]
    names = np.array([c.name for c, _, _ in plans] + [None], dtype=object)
    camp = names[who[row0[ww], codes]]  # index -1 -> None
    touched, old_key, first = published
    pos = old_key.get_indexer(pd.MultiIndex.from_arrays([users.astype(str), items.astype(str)]))
    src = np.where(pos >= 0, pos, first.reindex(users).to_numpy())
    new = touched.iloc[src].reset_index(drop=True).copy()
    new["item_id"] = items
    new["rank"] = jj + 1
    new["score"] = shown_scores[ww, jj]
    new["propensity"] = prop[ww, jj]
    new["propensity_se"] = se[ww, jj]
    new["campaign"] = camp
    reason = new["reason"].to_numpy(dtype=object).copy()
    kept_promoted = (pos >= 0) & (camp != None)  # noqa: E711 (element-wise)
    reason[kept_promoted] = ["featured: " + str(x) for x in reason[kept_promoted]]
    absent = np.flatnonzero(pos < 0)
    if len(absent):
        reason_tag = new["reason_tag"].to_numpy(dtype=object).copy()
        arm_feats = new["arm_features"].to_numpy(dtype=object).copy()
        expl = new["is_exploration"].to_numpy().copy()
        expl[absent] = False
        t_abs = found.tag[starts[ww[absent]] + codes[absent]]
        if cols is not None:  # each row's arm in the columns; each arm's text written once
            arm_row = cols.arm_bounds[sel[ww[absent]]] + t_abs
            tags = cols.tags[arm_row]
            text = {t: f"featured: {tag_label(t, labels)}" for t in set(tags.tolist())}
            reason[absent] = [text[t] for t in tags.tolist()]
            reason_tag[absent] = tags
            arm_feats[absent] = cols.features_json(arm_row)
        else:
            arm_of: dict[tuple[int, int], int] = {}  # (user, tag) -> index into rows_feats
            rows_feats: list[np.ndarray] = []
            which: list[int] = []
            for a, t in zip(absent.tolist(), t_abs.tolist(), strict=True):
                ctx = contexts[int(sel[ww[a]])]
                reason[a] = f"featured: {tag_label(ctx.tags[t], labels)}"
                reason_tag[a] = ctx.tags[t]
                key = (int(ww[a]), t)
                if key not in arm_of:
                    arm_of[key] = len(rows_feats)
                    rows_feats.append(ctx.features[t])
                which.append(arm_of[key])
            # the same text as one row at a time, each distinct arm written once
            arm_feats[absent] = np.asarray(arm_features_json_rows(rows_feats), dtype=object)[which]
        new["reason_tag"] = reason_tag
        new["arm_features"] = arm_feats
        new["is_exploration"] = expl
    new["reason"] = reason
    return new[columns]
