"""The per-user campaign re-rank that ``ml.marketing.campaigns.campaign_slates`` batches: each
treated user's draws re-ranked one by one with :func:`rerank_slate`, the rule written for one
slate (the reference the batched version must reproduce row for row)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ml.explore.context import arm_features_json
from ml.explore.slate import sample_slates, tag_label, user_seed
from ml.marketing.campaigns import TREATMENT, Campaign, arm, boosted_items
from tests.explore.oracles import flat_items


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


def per_user_campaign_slates(
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
    """campaign_slates, one user and one draw at a time."""
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
