"""Campaign windows: dated boosts of tags or items, capped at a share of slots, evaluated
honestly with a randomised holdout of users who see no boost.

Holdout membership is a deterministic hash of (campaign, user): the same user is in the same
arm on every publish run, and the report can recompute arms without extra state.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SPEC_DIR = Path(__file__).parent / "campaigns"
TREATMENT, HOLDOUT, NONE = "treatment", "holdout", "none"


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
    contexts: list[Any],
    k: int,
    day: str,
    n_draws: int,
    campaigns: list[Campaign],
    item_tags: pd.DataFrame,
    labels: dict[str, str] | None = None,
    draws_cache: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Apply active campaigns to published slates (the rows of ``ml.explore.slate.build_slates``).

    Users in a campaign's holdout keep their slate. For a treatment user whose candidates hold
    a boosted item, the user's slate draws are reproduced (same seed per user and day), every
    draw is re-ranked by :func:`rerank_slate` (exploration slots stay where the policy put them,
    so ``is_exploration`` is unchanged), and the propensity of each shown item is recomputed
    from the re-ranked draws: it stays the exact (or Monte Carlo) probability that this serving
    process shows that item at that slot. Adds the nullable column ``campaign``: the campaign
    that promoted the row's item, null on every other row. Outside every window the rows are
    returned unchanged (plus a null ``campaign``). ``draws_cache`` (user -> ``SlateDraws``, as
    filled by ``build_slates``) spares re-drawing a user's slates; the draws are the same either way."""
    from ml.explore.slate import arm_features_json, flat_items, sample_slates, tag_label, user_seed

    out = slates.assign(campaign=pd.Series([None] * len(slates), index=slates.index, dtype=object))
    if not campaigns or out.empty:
        return out
    plans = [(c, boosted_items(c, item_tags), math.floor(c.max_share * k)) for c in campaigns]
    arms = {c.name: dict(zip(out["user_id"].unique(), arm(out["user_id"].unique(), c), strict=True)) for c in campaigns}
    columns = list(out.columns)
    # who has a boosted candidate in a campaign it is treated by (cheap; most users do not)
    work = []
    for ctx in contexts:
        todo = []
        flat: np.ndarray | None = None
        for c, items, cap in plans:
            if arms[c.name].get(ctx.user_id) != TREATMENT or cap < 1:
                continue
            if flat is None:
                flat = np.array([str(x) for x in flat_items(ctx)], dtype=object)
            codes = {i for i, x in enumerate(flat.tolist()) if x in items}
            if codes:
                todo.append((c, codes, cap))
        if todo and flat is not None:
            work.append((ctx, flat, todo))
    touched_users = {ctx.user_id for ctx, _, _ in work}
    by_user: dict[str, list[dict[str, Any]]] = {}
    touched = out[out["user_id"].isin(touched_users)]
    # one conversion per column (DataFrame.to_dict boxes value by value), not a lookup per item
    values = [touched[c].to_numpy(dtype=object).tolist() for c in columns]
    for rec in (dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)):
        by_user.setdefault(rec["user_id"], []).append(rec)
    replaced: list[dict[str, Any]] = []
    changed: set[str] = set()
    for ctx, flat, todo in work:
        rows = by_user.get(ctx.user_id)
        if rows is None:
            continue
        draws = (draws_cache or {}).get(ctx.user_id)
        if draws is None:
            rng = np.random.default_rng(user_seed(ctx.user_id, day))
            draws = sample_slates(policy, ctx, k, rng, n_draws)
        exploit = np.asarray(policy.exploit_values(ctx), dtype=np.float64)
        tag_of = np.repeat(np.arange(len(ctx.items)), [len(x) for x in ctx.items])
        value = exploit[tag_of] * np.concatenate([np.asarray(s, float) for s in ctx.item_scores])
        new_items, new_scores = draws.items.copy(), draws.scores.copy()
        who = np.full(draws.items.shape, None, dtype=object)
        fixed = draws.explore | (draws.items < 0)
        # re-rank each distinct draw once (many draws repeat the same slate)
        if draws.items.shape[0] == 1:  # one slate (deterministic policies): nothing to group
            uniq, inverse = draws.items, np.zeros(1, dtype=np.int64)
        else:
            uniq, inverse = np.unique(draws.items, axis=0, return_inverse=True)
            inverse = np.asarray(inverse).ravel()
        for u_row in range(len(uniq)):
            same = inverse == u_row
            r = int(np.flatnonzero(same)[0])
            its, scs = draws.items[r].copy(), draws.scores[r].copy()
            promoted_by: dict[int, str] = {}
            for c, codes, cap in todo:
                shown = set(its.tolist())
                extra = {x: float(value[x]) for x in codes if x not in shown}
                its, scs, touched = rerank_slate(its, scs, fixed[r], codes, extra, c.boost, cap)
                promoted_by.update({int(its[j]): c.name for j in np.flatnonzero(touched)})
            new_items[same], new_scores[same] = its, scs
            who[same] = np.array([promoted_by.get(int(x)) for x in its], dtype=object)
        prop = (new_items == new_items[:1]).mean(axis=0)
        se = np.sqrt(prop * (1.0 - prop) / len(new_items)) if len(new_items) > 1 else np.zeros(k)
        old = {str(r["item_id"]): r for r in rows}
        before = len(replaced)
        for j in range(k):
            code = int(new_items[0, j])
            if code < 0:
                continue
            item = str(flat[code])
            t = int(tag_of[code])
            if item in old:
                base = dict(old[item])
            else:  # a boosted candidate the plain slate did not show
                base = dict(rows[0])
                base.update(
                    reason=f"featured: {tag_label(ctx.tags[t], labels)}",
                    reason_tag=ctx.tags[t],
                    arm_features=arm_features_json(ctx.features[t]),
                )
                base["is_exploration"] = False
            base.update(
                item_id=item,
                rank=j + 1,
                score=float(new_scores[0, j]),
                propensity=float(prop[j]),
                propensity_se=float(se[j]),
                campaign=who[0, j],
            )
            if base["campaign"] is not None and item in old:
                base["reason"] = f"featured: {base['reason']}"
            replaced.append(base)
        if len(replaced) > before:
            changed.add(ctx.user_id)
    if not replaced:
        return out
    keep = out[~out["user_id"].isin(changed)]
    merged = pd.concat([keep, pd.DataFrame(replaced, columns=columns)], ignore_index=True)
    order = {u: n for n, u in enumerate(out["user_id"].drop_duplicates())}
    merged["_o"] = merged["user_id"].map(order)
    return merged.sort_values(["_o", "rank"], kind="stable").drop(columns="_o").reset_index(drop=True)
