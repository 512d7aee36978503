"""Filling k slots with a policy, and the propensity of every shown item.

For one user the sampler draws ``n_draws`` independent slates with the same random generator,
seeded from (user, day): row 0 is the slate that is shown, all rows together are a Monte Carlo
sample of the policy. The propensity of the shown item at slot j is the share of draws with that
item at slot j (row 0 included, so it is at least 1 / n_draws); its standard error
sqrt(p (1 - p) / n_draws) is published alongside (``propensity_se``). Deterministic policies
(greedy, UCB1, LinUCB) draw one slate and have propensity exactly 1. Per slot, the draws'
frequencies over items sum to 1: they are the policy's position-wise action distribution, which
is what off-policy evaluation of this policy needs (``slot_probability``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.explore import columns as C
from ml.explore.context import ContextColumns, SlateContext, arm_features_json_rows
from ml.explore.policies import SlatePolicy


@dataclass
class SlateDraws:
    """Independent slates of one user, row 0 shown. Shapes (R, k); -1 marks an empty slot.

    ``items`` are codes into the context's flattened item lists (see :func:`item_codes`),
    ``tags`` index ``ctx.tags``, ``scores`` are the greedy value of the slot: the tag's posterior
    mean click probability x diversity ** (earlier uses of the tag) x the item's score."""

    tags: np.ndarray
    items: np.ndarray
    explore: np.ndarray
    scores: np.ndarray

    @property
    def n_draws(self) -> int:
        return self.items.shape[0]

    def propensity(self) -> tuple[np.ndarray, np.ndarray]:
        """(propensity, standard error) of the shown slate's item at each slot, shape (k,)."""
        p = (self.items == self.items[:1]).mean(axis=0)
        se = np.sqrt(p * (1.0 - p) / self.n_draws) if self.n_draws > 1 else np.zeros_like(p)
        return p, se

    def slot_probability(self, slot: int, code: int) -> float:
        """pi(item ``code`` at ``slot``): the share of draws showing it there."""
        return float(np.mean(self.items[:, slot] == code))

    def slot_distribution(self, slot: int) -> tuple[np.ndarray, np.ndarray]:
        """(item codes, probabilities) at ``slot``; probabilities sum to 1 over filled draws."""
        col = self.items[:, slot]
        codes, n = np.unique(col[col >= 0], return_counts=True)
        return codes, n / max(int((col >= 0).sum()), 1)


def flat_items(ctx: SlateContext) -> list[object]:
    """The context's item ids in code order: tag by tag, each tag's items best first (a code is
    an index into this list; see :func:`item_codes`)."""
    return [x for its in ctx.items for x in its]


def item_codes(ctx: SlateContext) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """(offset per tag, flattened item ids, item id -> code) for a context."""
    counts = np.array([len(i) for i in ctx.items], dtype=np.int64)
    offsets = np.r_[0, np.cumsum(counts)[:-1]].astype(np.int64)
    flat = np.concatenate([np.asarray(i, dtype=object) for i in ctx.items]) if ctx.items else np.array([], object)
    return offsets, flat, {str(i): c for c, i in enumerate(flat)}


def user_seed(user_id: str, day: str) -> int:
    """The random seed of one user's slates on one day (stable across processes and runs)."""
    return int.from_bytes(hashlib.sha256(f"{user_id}|{day}".encode()).digest()[:8], "little")


def recommendation_id(run_id: str, user_id: str) -> str:
    """Id of the slate shown to a user by one publish run (carried back by feedback events)."""
    return hashlib.sha1(f"{run_id}|{user_id}".encode()).hexdigest()[:16]


def sample_slates(
    policy: SlatePolicy, ctx: SlateContext, k: int, rng: np.random.Generator, n_draws: int = 256
) -> SlateDraws:
    """Draw slates of k slots for one context (one slate if the policy is deterministic)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    R = 1 if policy.deterministic else max(int(n_draws), 1)
    T = ctx.n_tags
    counts = np.array([len(i) for i in ctx.items], dtype=np.int64)
    offsets = np.r_[0, np.cumsum(counts)[:-1]].astype(np.int64)
    # item value of each tag's m-th item, padded with 0 after its last item: shape (T, max + 1)
    item_value = np.zeros((T, int(counts.max(initial=0)) + 1))
    for t, sc in enumerate(ctx.item_scores):
        item_value[t, : len(sc)] = sc
    values = np.asarray(policy.draw_values(ctx, rng, R), dtype=np.float64)
    exploit = np.asarray(policy.exploit_values(ctx), dtype=np.float64)
    used = np.zeros((R, T), dtype=np.int64)
    tags = np.full((R, k), -1, dtype=np.int64)
    items = np.full((R, k), -1, dtype=np.int64)
    explore = np.zeros((R, k), dtype=bool)
    scores = np.full((R, k), np.nan)
    rows = np.arange(R)
    cols = np.arange(T)[None, :]
    for j in range(k):
        avail = used < counts[None, :]
        ok = avail.any(axis=1)
        if not ok.any():
            break
        factor = policy.diversity**used * item_value[cols, np.minimum(used, item_value.shape[1] - 1)]
        chosen, expl = policy.choose(ctx, j, k, values, exploit, avail, factor, rng)
        r, c = rows[ok], chosen[ok]
        tags[r, j] = c
        items[r, j] = offsets[c] + used[r, c]
        explore[r, j] = expl[ok]
        scores[r, j] = exploit[c] * factor[r, c]
        used[r, c] += 1
    return SlateDraws(tags, items, explore, scores)


def tag_label(tag: str, labels: dict[str, str] | None = None) -> str:
    """Human wording of a tag: the vocabulary description when known, else the tag's words."""
    if labels and tag in labels:
        return labels[tag]
    return tag.split(":", 1)[-1].replace("_", " ")


def _plain_deterministic(policy: SlatePolicy) -> bool:
    """Deterministic with the base ``choose`` (greedy, UCB1, LinUCB): one slate per user whose
    slots are the row-wise argmax, so many users can be filled at once."""
    return bool(policy.deterministic) and type(policy).choose is SlatePolicy.choose


def sample_deterministic(policy: SlatePolicy, contexts: list[SlateContext], k: int) -> list[SlateDraws]:
    """:func:`sample_slates` with one draw for many contexts at once (same slates, same values).

    Every user is a row of padded (B, T_max) arrays; padded tags have no items, so they are never
    available. Only for policies where :func:`_plain_deterministic` holds."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    B = len(contexts)
    if B == 0:
        return []
    T = max(max(c.n_tags for c in contexts), 1)
    counts = np.zeros((B, T), dtype=np.int64)
    M = max(max((len(i) for c in contexts for i in c.items), default=0), 0)
    item_value = np.zeros((B, T, M + 1))
    values = np.full((B, T), np.nan)
    exploit = np.full((B, T), np.nan)
    for b, ctx in enumerate(contexts):
        n = ctx.n_tags
        if n == 0:
            continue
        for t, sc in enumerate(ctx.item_scores):
            counts[b, t] = len(sc)
            item_value[b, t, : len(sc)] = sc
        values[b, :n] = np.asarray(policy.draw_values(ctx, None, 1), dtype=np.float64)[0]  # type: ignore[arg-type]
        exploit[b, :n] = np.asarray(policy.exploit_values(ctx), dtype=np.float64)
    tags, items, explore, scores = _fill_deterministic(policy, counts, item_value, values, exploit, k)
    return [SlateDraws(tags[b : b + 1], items[b : b + 1], explore[b : b + 1], scores[b : b + 1]) for b in range(B)]


def _fill_deterministic(
    policy: SlatePolicy, counts: np.ndarray, item_value: np.ndarray, values: np.ndarray, exploit: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The k slots of B users at once from padded arrays: ``counts`` (B, T) items per tag,
    ``item_value`` (B, T, M + 1) each tag's item scores (0 after its last), ``values`` /
    ``exploit`` (B, T) the draw and greedy values. Returns (tags, item codes, explore, scores),
    each (B, k); an item code indexes the user's items flattened tag by tag."""
    B, T = counts.shape
    M = item_value.shape[2] - 1
    offsets = np.zeros((B, T), dtype=np.int64)
    offsets[:, 1:] = np.cumsum(counts, axis=1)[:, :-1]
    used = np.zeros((B, T), dtype=np.int64)
    tags = np.full((B, k), -1, dtype=np.int64)
    items = np.full((B, k), -1, dtype=np.int64)
    explore = np.zeros((B, k), dtype=bool)
    scores = np.full((B, k), np.nan)
    rows = np.arange(B)
    bi, ti = np.arange(B)[:, None], np.arange(T)[None, :]
    for j in range(k):
        avail = used < counts
        ok = avail.any(axis=1)
        if not ok.any():
            break
        factor = policy.diversity**used * item_value[bi, ti, np.minimum(used, M)]
        chosen = np.argmax(np.where(avail, values * factor, -np.inf), axis=1)
        greedy = np.argmax(np.where(avail, exploit * factor, -np.inf), axis=1)
        r, c = rows[ok], chosen[ok]
        tags[r, j] = c
        items[r, j] = offsets[r, c] + used[r, c]
        explore[r, j] = (chosen != greedy)[ok]
        scores[r, j] = exploit[r, c] * factor[r, c]
        used[r, c] += 1
    return tags, items, explore, scores


def _columnar_slates(
    policy: SlatePolicy,
    cols: ContextColumns,
    k: int,
    run_id: str,
    labels: dict[str, str] | None,
    draws_cache: dict[str, SlateDraws] | None,
    batch: int = 8192,
) -> pd.DataFrame | None:
    """:func:`build_slates` of a plain deterministic policy with whole-array values
    (``policy.column_values``) on contexts given as columns: the padded arrays are cut from the
    columns instead of filled context by context, and the rows are made in whole arrays. The
    same rows as the per-context path; None when the policy has no whole-array values."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    vals = policy.column_values(cols)
    if vals is None or not cols.users:
        return None
    draw_v, exploit_v = vals
    ab, ib = cols.arm_bounds, cols.item_bounds
    n_users = len(cols.users)
    parts: list[tuple[np.ndarray, ...]] = []
    for u0 in range(0, n_users, batch):
        u1 = min(u0 + batch, n_users)
        B = u1 - u0
        r0, r1 = int(ab[u0]), int(ab[u1])
        n_arms = np.diff(ab[u0 : u1 + 1])
        T = max(int(n_arms.max(initial=0)), 1)
        row_user = np.repeat(np.arange(B), n_arms)
        row_tag = np.arange(r1 - r0) - np.repeat(ab[u0:u1] - r0, n_arms)
        cnt = np.diff(ib[r0 : r1 + 1])
        M = int(cnt.max(initial=0))
        counts = np.zeros((B, T), dtype=np.int64)
        counts[row_user, row_tag] = cnt
        i0, i1 = int(ib[r0]), int(ib[r1])
        item_row = np.repeat(np.arange(r1 - r0), cnt)
        rank = np.arange(i1 - i0) - np.repeat(ib[r0:r1] - i0, cnt)
        item_value = np.zeros((B, T, M + 1))
        item_value[row_user[item_row], row_tag[item_row], rank] = cols.item_scores[i0:i1]
        values = np.full((B, T), np.nan)
        exploit = np.full((B, T), np.nan)
        values[row_user, row_tag] = draw_v[r0:r1]
        exploit[row_user, row_tag] = exploit_v[r0:r1]
        tags, items, explore, scores = _fill_deterministic(policy, counts, item_value, values, exploit, k)
        if draws_cache is not None:
            for b in range(B):
                draws_cache[cols.users[u0 + b]] = SlateDraws(
                    tags[b : b + 1], items[b : b + 1], explore[b : b + 1], scores[b : b + 1]
                )
        bb, jj = np.nonzero(items >= 0)  # user by user, slot by slot
        user = u0 + bb
        arm = ab[user] + tags[bb, jj]
        parts.append((user, jj, arm, ib[ab[user]] + items[bb, jj], scores[bb, jj], explore[bb, jj]))
    user, jj, arm, flat, score, expl = (np.concatenate([p[n] for p in parts]) for n in range(6))
    users = np.asarray(cols.users, dtype=object)
    item = cols.item_ids[flat]
    tag = cols.tags[arm]
    # wording per distinct tag; the champion's reason where it has one for a shown item
    distinct = {t: tag_label(t, labels) for t in set(cols.tags.tolist())}
    new_text = {t: f"something new for you: {w}" for t, w in distinct.items()}
    like_text = {t: f"because you like {w}" for t, w in distinct.items()}
    reason = np.array(
        [new_text[t] if e else like_text[t] for t, e in zip(tag.tolist(), expl.tolist(), strict=True)], dtype=object
    )
    with_reasons = np.array([bool(r) for r in cols.reasons], dtype=bool)
    for n in np.flatnonzero(with_reasons[user] & ~expl).tolist():
        given = cols.reasons[user[n]].get(str(item[n]))
        if given:
            reason[n] = given
    rids = np.array([recommendation_id(run_id, u) for u in cols.users], dtype=object)
    df = pd.DataFrame(
        {
            "user_id": users[user],
            "rank": jj + 1,
            "item_id": np.asarray([str(x) for x in item.tolist()], dtype=object),
            "score": score.astype(np.float64),
            "reason": reason,
            "reason_tag": tag,
            C.POLICY: policy.name,
            C.PROPENSITY: np.ones(len(user)),
            C.PROPENSITY_SE: np.zeros(len(user)),
            C.IS_EXPLORATION: expl.astype(bool),
            C.RECOMMENDATION_ID: rids[user],
        }
    )
    df[C.ARM_FEATURES] = cols.features_json(arm)
    return df


def draw_all(
    policy: SlatePolicy, contexts: list[SlateContext], k: int, day: str, n_draws: int, batch: int = 4096
) -> Iterator[tuple[SlateContext, SlateDraws]]:
    """Each context with its draws, seeded per (user, day); batched for plain deterministic policies."""
    if _plain_deterministic(policy):
        for start in range(0, len(contexts), batch):
            part = contexts[start : start + batch]
            yield from zip(part, sample_deterministic(policy, part, k), strict=True)
        return
    for ctx in contexts:
        rng = np.random.default_rng(user_seed(ctx.user_id, day))
        yield ctx, sample_slates(policy, ctx, k, rng, n_draws)


def build_slates(
    policy: SlatePolicy,
    contexts: Iterable[SlateContext],
    k: int,
    day: str,
    run_id: str,
    n_draws: int = 256,
    labels: dict[str, str] | None = None,
    draws_cache: dict[str, SlateDraws] | None = None,
) -> pd.DataFrame:
    """The published rows for every context: one per (user, slot) with item, score, reason,
    reason_tag, policy, propensity (+ standard error), is_exploration, recommendation_id and the
    chosen arm's features. Randomness is seeded per (user, day): the same inputs give the same rows.
    When ``draws_cache`` is given, deterministic policies' draws (one slate per user) are kept in
    it by user id, for the campaign re-ranking to reuse."""
    cols = getattr(contexts, "columns", None)
    if cols is not None and _plain_deterministic(policy):
        fast = _columnar_slates(policy, cols, k, run_id, labels, draws_cache)
        if fast is not None:
            return fast
    out: list[tuple[object, ...]] = []
    need_rows: list[np.ndarray] = []  # feature rows of the shown (user, tag) arms
    row_feature: list[int] = []  # per output row: its arm's index into need_rows
    keep = draws_cache is not None and policy.deterministic
    name = policy.name
    for ctx, draws in draw_all(policy, list(contexts), k, day, n_draws):
        if keep:
            draws_cache[ctx.user_id] = draws  # type: ignore[index]
        flat = flat_items(ctx)
        prop, se = draws.propensity()
        prop_l, se_l = prop.tolist(), se.tolist()
        codes, tag_ix = draws.items[0].tolist(), draws.tags[0].tolist()
        expl, sc = draws.explore[0].tolist(), draws.scores[0].tolist()
        rid = recommendation_id(run_id, ctx.user_id)
        feats: dict[int, int] = {}  # tag -> index into need_rows
        for j in range(k):
            code = codes[j]
            if code < 0:
                continue
            t = tag_ix[j]
            tag = ctx.tags[t]
            item = str(flat[code])
            if expl[j]:
                reason = f"something new for you: {tag_label(tag, labels)}"
            else:
                reason = ctx.reasons.get(item) or f"because you like {tag_label(tag, labels)}"
            if t not in feats:
                feats[t] = len(need_rows)
                need_rows.append(ctx.features[t])
            out.append((ctx.user_id, j + 1, item, sc[j], reason, tag, name, prop_l[j], se_l[j], expl[j], rid))
            row_feature.append(feats[t])
    # the arm features as JSON, for all distinct (user, tag) rows at once
    texts = arm_features_json_rows(need_rows)
    df = pd.DataFrame(
        out,
        columns=[
            "user_id",
            "rank",
            "item_id",
            "score",
            "reason",
            "reason_tag",
            C.POLICY,
            C.PROPENSITY,
            C.PROPENSITY_SE,
            C.IS_EXPLORATION,
            C.RECOMMENDATION_ID,
        ],
    )
    df[C.ARM_FEATURES] = [texts[n] for n in row_feature] if row_feature else pd.Series([], dtype=object)
    return df
