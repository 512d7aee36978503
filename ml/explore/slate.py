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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.explore import columns as C
from ml.explore.context import ContextColumns, ContextList, SlateContext
from ml.explore.policies import SlatePolicy
from ml.frames import isin, ranks


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
    # item value of each tag's m-th item, padded with 0 after its last item: shape (T, max + 1)
    item_value = np.zeros((T, int(counts.max(initial=0)) + 1))
    for t, sc in enumerate(ctx.item_scores):
        item_value[t, : len(sc)] = sc
    values = np.asarray(policy.draw_values(ctx, rng, R), dtype=np.float64)
    exploit = np.asarray(policy.exploit_values(ctx), dtype=np.float64)

    def choose(slot: int, avail: np.ndarray, factor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return policy.choose(ctx, slot, k, values, exploit, avail, factor, rng)

    offsets = np.r_[0, np.cumsum(counts)[:-1]].astype(np.int64)
    counts_r, offsets_r, value_r, exploit_r = (
        np.broadcast_to(a, (R, *a.shape)) for a in (counts, offsets, item_value, exploit)
    )  # the same for every draw
    return _fill_slots(k, counts_r, offsets_r, value_r, exploit_r, policy.diversity, choose)


def _fill_slots(
    k: int,
    counts: np.ndarray,
    offsets: np.ndarray,
    item_value: np.ndarray,
    exploit: np.ndarray,
    diversity: float,
    choose: Callable[[int, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
) -> SlateDraws:
    """The k slots of N rows at once (the draws of one user, or one slate of each of N users):
    ``counts`` (N, T) items per tag, ``offsets`` (N, T) the code of each tag's first item,
    ``item_value`` (N, T, M + 1) each tag's item scores (0 after its last), ``exploit`` (N, T)
    the greedy values. Slot by slot, ``choose(slot, avail, factor)`` picks each row's tag among
    those with items left (``avail``) and says whether it explores; ``factor`` is diversity **
    (the tag's earlier uses) x the score of the tag's next item, which that item takes."""
    N, T = counts.shape
    M = item_value.shape[2] - 1
    used = np.zeros((N, T), dtype=np.int64)
    tags, items = np.full((N, k), -1, dtype=np.int64), np.full((N, k), -1, dtype=np.int64)
    explore, scores = np.zeros((N, k), dtype=bool), np.full((N, k), np.nan)
    rows, cols = np.arange(N)[:, None], np.arange(T)[None, :]
    for j in range(k):
        avail = used < counts
        ok = avail.any(axis=1)
        if not ok.any():
            break
        factor = diversity**used * item_value[rows, cols, np.minimum(used, M)]
        chosen, expl = choose(j, avail, factor)
        r, c = np.flatnonzero(ok), chosen[ok]
        tags[r, j] = c
        items[r, j] = offsets[r, c] + used[r, c]
        explore[r, j] = expl[ok]
        scores[r, j] = exploit[r, c] * factor[r, c]
        used[r, c] += 1
    return SlateDraws(tags, items, explore, scores)


def tag_label(tag: str, labels: dict[str, str] | None = None) -> str:
    """Human wording of a tag: the vocabulary description when known, else the tag's words."""
    if labels and tag in labels:
        return labels[tag]
    return tag.split(":", 1)[-1].replace("_", " ")


def flag_cold_start(
    rows: pd.DataFrame, cold_users: Sequence[str], labels: dict[str, str] | None = None
) -> pd.DataFrame:
    """Add the boolean ``cold_start`` column: True on the rows of ``cold_users`` (known users the
    champion had no candidates for: no history yet). Their rows come from popular interests, so
    their reason says so ("popular in <interest>, while we learn what you like"), except a new
    item's, which keeps its own. Propensities are the policy's, unchanged."""
    out = rows.assign(cold_start=isin(rows["user_id"], list(cold_users)) if len(cold_users) else False)
    mine = out["cold_start"].to_numpy(dtype=bool)
    if "new_item" in out:
        mine = mine & ~out["new_item"].to_numpy(dtype=bool)
    if mine.any():
        tags = out.loc[mine, "reason_tag"].astype(str).tolist()
        out.loc[mine, "reason"] = [f"popular in {tag_label(t, labels)}, while we learn what you like" for t in tags]
    return out


def _fill_deterministic(
    policy: SlatePolicy, counts: np.ndarray, item_value: np.ndarray, values: np.ndarray, exploit: np.ndarray, k: int
) -> SlateDraws:
    """The one slate of each of B users: :func:`_fill_slots` picking the best draw value
    (``values``, (B, T)) on the padded arrays of :func:`_padded`."""
    offsets = np.zeros_like(counts)
    offsets[:, 1:] = np.cumsum(counts, axis=1)[:, :-1]

    def choose(slot: int, avail: np.ndarray, factor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        chosen = np.argmax(np.where(avail, values * factor, -np.inf), axis=1)
        return chosen, chosen != np.argmax(np.where(avail, exploit * factor, -np.inf), axis=1)

    return _fill_slots(k, counts, offsets, item_value, exploit, policy.diversity, choose)


def build_slates(
    policy: SlatePolicy,
    contexts: Sequence[SlateContext],
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
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    contexts = ContextList.of(contexts)
    if _plain_deterministic(policy):
        shown = _deterministic_slates(policy, contexts, k, draws_cache)
    else:
        shown = _sampled_slates(policy, contexts, k, day, n_draws, draws_cache)
    return _slate_rows(policy, contexts.columns, shown, run_id, labels)


@dataclass
class _ShownSlates:
    """The shown slate of every user, shapes (users, k): arm index within the user (``tags``),
    item code within the user (``items``, -1: empty slot), and per slot the exploration flag,
    greedy value, propensity and its standard error."""

    tags: np.ndarray
    items: np.ndarray
    explore: np.ndarray
    scores: np.ndarray
    propensity: np.ndarray
    propensity_se: np.ndarray


def _plain_deterministic(policy: SlatePolicy) -> bool:
    """Deterministic with the base ``choose`` (greedy, UCB1, LinUCB): one slate per user whose
    slots are the row-wise argmax, so many users can be filled at once."""
    return bool(policy.deterministic) and type(policy).choose is SlatePolicy.choose


def _sampled_slates(
    policy: SlatePolicy,
    contexts: ContextList,
    k: int,
    day: str,
    n_draws: int,
    draws_cache: dict[str, SlateDraws] | None,
) -> _ShownSlates:
    """:func:`sample_slates` user by user, seeded per (user, day)."""
    n = len(contexts)
    tags, items = np.full((n, k), -1, dtype=np.int64), np.full((n, k), -1, dtype=np.int64)
    explore, scores = np.zeros((n, k), dtype=bool), np.full((n, k), np.nan)
    prop, se = np.ones((n, k)), np.zeros((n, k))
    for u, ctx in enumerate(contexts):
        draws = sample_slates(policy, ctx, k, np.random.default_rng(user_seed(ctx.user_id, day)), n_draws)
        if draws_cache is not None and policy.deterministic:
            draws_cache[ctx.user_id] = draws
        tags[u], items[u], explore[u], scores[u] = draws.tags[0], draws.items[0], draws.explore[0], draws.scores[0]
        prop[u], se[u] = draws.propensity()
    return _ShownSlates(tags, items, explore, scores, prop, se)


def _deterministic_slates(
    policy: SlatePolicy,
    contexts: ContextList,
    k: int,
    draws_cache: dict[str, SlateDraws] | None,
    batch: int = 8192,
) -> _ShownSlates:
    """The one slate of a plain deterministic policy for every user, ``batch`` users at a time
    as rows of padded (users, tags, items) arrays cut from the columns (:func:`_fill_deterministic`)."""
    cols = contexts.columns
    draw_v, exploit_v = _arm_values(policy, contexts)
    n_users = len(cols.users)
    parts = [
        _fill_deterministic(policy, *_padded(cols, u0, min(u0 + batch, n_users), draw_v, exploit_v), k)
        for u0 in range(0, n_users, batch)
    ]
    tags, items, explore, scores = (
        np.concatenate([getattr(p, n) for p in parts]) if parts else np.zeros((0, k))
        for n in ("tags", "items", "explore", "scores")
    )
    if draws_cache is not None:
        for u, user in enumerate(cols.users):
            draws_cache[user] = SlateDraws(tags[u : u + 1], items[u : u + 1], explore[u : u + 1], scores[u : u + 1])
    return _ShownSlates(tags, items, explore, scores, np.ones(items.shape), np.zeros(items.shape))


def _arm_values(policy: SlatePolicy, contexts: ContextList) -> tuple[np.ndarray, np.ndarray]:
    """Per arm row of the columns: (draw value, greedy value) of a deterministic policy, from
    ``policy.column_values`` when it has a whole-array form, else context by context."""
    values = policy.column_values(contexts.columns)
    if values is not None:
        return values
    with_arms = [ctx for ctx in contexts if ctx.n_tags]
    if not with_arms:
        return np.zeros(0), np.zeros(0)
    draw = [np.asarray(policy.draw_values(ctx, None, 1), dtype=np.float64)[0] for ctx in with_arms]  # type: ignore[arg-type]
    exploit = [np.asarray(policy.exploit_values(ctx), dtype=np.float64) for ctx in with_arms]
    return np.concatenate(draw), np.concatenate(exploit)


def _padded(
    cols: ContextColumns, u0: int, u1: int, draw_v: np.ndarray, exploit_v: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Users ``u0:u1`` as the padded arrays of :func:`_fill_deterministic`: items per arm
    (B, T), item scores (B, T, M + 1), draw and greedy values (B, T); padded arms have no items."""
    ab, ib = cols.arm_bounds, cols.item_bounds
    n_users = u1 - u0
    r0, r1 = int(ab[u0]), int(ab[u1])
    n_arms = np.diff(ab[u0 : u1 + 1])
    width = max(int(n_arms.max(initial=0)), 1)
    row_user = np.repeat(np.arange(n_users), n_arms)
    row_arm = ranks(n_arms)
    per_arm = np.diff(ib[r0 : r1 + 1])
    counts = np.zeros((n_users, width), dtype=np.int64)
    counts[row_user, row_arm] = per_arm
    i0, i1 = int(ib[r0]), int(ib[r1])
    item_arm = np.repeat(np.arange(r1 - r0), per_arm)
    rank = ranks(per_arm)
    item_value = np.zeros((n_users, width, int(per_arm.max(initial=0)) + 1))
    item_value[row_user[item_arm], row_arm[item_arm], rank] = cols.item_scores[i0:i1]
    values, exploit = np.full((n_users, width), np.nan), np.full((n_users, width), np.nan)
    values[row_user, row_arm] = draw_v[r0:r1]
    exploit[row_user, row_arm] = exploit_v[r0:r1]
    return counts, item_value, values, exploit


def _slate_rows(
    policy: SlatePolicy, cols: ContextColumns, shown: _ShownSlates, run_id: str, labels: dict[str, str] | None
) -> pd.DataFrame:
    """The published rows of the shown slates, user by user, slot by slot."""
    user, slot = np.nonzero(shown.items >= 0)
    ab, ib = cols.arm_bounds, cols.item_bounds
    arm = ab[user] + shown.tags[user, slot]
    item = np.asarray([str(x) for x in cols.item_ids[ib[ab[user]] + shown.items[user, slot]].tolist()], dtype=object)
    tag = cols.tags[arm]
    explore = shown.explore[user, slot].astype(bool)
    rids = np.array([recommendation_id(run_id, u) for u in cols.users], dtype=object)
    df = pd.DataFrame(
        {
            "user_id": np.asarray(cols.users, dtype=object)[user],
            "rank": slot + 1,
            "item_id": item,
            "score": shown.scores[user, slot].astype(np.float64),
            "reason": _reasons(cols, user, item, tag, explore, labels),
            "reason_tag": tag,
            C.POLICY: policy.name,
            C.PROPENSITY: shown.propensity[user, slot],
            C.PROPENSITY_SE: shown.propensity_se[user, slot],
            C.IS_EXPLORATION: explore,
            C.RECOMMENDATION_ID: rids[user],
        }
    )
    df[C.ARM_FEATURES] = cols.features_json(arm)
    return df


def _reasons(
    cols: ContextColumns,
    user: np.ndarray,
    item: np.ndarray,
    tag: np.ndarray,
    explore: np.ndarray,
    labels: dict[str, str] | None,
) -> np.ndarray:
    """Why each row is shown: "something new for you: <tag>" on exploration rows, else the
    champion's reason for the item when it gave one, else "because you like <tag>"."""
    wording = {t: tag_label(t, labels) for t in set(tag.tolist())}
    reason = np.array(
        [
            f"something new for you: {wording[t]}" if e else f"because you like {wording[t]}"
            for t, e in zip(tag.tolist(), explore.tolist(), strict=True)
        ],
        dtype=object,
    )
    with_reasons = np.array([bool(r) for r in cols.reasons], dtype=bool)
    for n in np.flatnonzero(with_reasons[user] & ~explore).tolist():
        given = cols.reasons[user[n]].get(str(item[n]))
        if given:
            reason[n] = given
    return reason
