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
import json
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.explore import columns as C
from ml.explore.context import SlateContext
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


def item_codes(ctx: SlateContext) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """(offset per tag, flattened item ids, item id -> code) for a context."""
    counts = np.array([len(i) for i in ctx.items], dtype=np.int64)
    offsets = np.r_[0, np.cumsum(counts)[:-1]].astype(np.int64)
    flat = np.concatenate([np.asarray(i, dtype=object) for i in ctx.items]) if ctx.items else np.array([], object)
    return offsets, flat, {str(i): c for c, i in enumerate(flat)}


def user_seed(user_id: str, day: str) -> int:
    """The random seed of one user's slates on one day (stable across processes and runs)."""
    return int.from_bytes(hashlib.sha256(f"{user_id}|{day}".encode()).digest()[:8], "little")


def arm_features_json(row: np.ndarray) -> str:
    """A slate row's ``arm_features``: the arm's context features, rounded, as compact JSON."""
    return json.dumps([round(float(x), 6) for x in row], separators=(",", ":"))


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


def build_slates(
    policy: SlatePolicy,
    contexts: Iterable[SlateContext],
    k: int,
    day: str,
    run_id: str,
    n_draws: int = 256,
    labels: dict[str, str] | None = None,
) -> pd.DataFrame:
    """The published rows for every context: one per (user, slot) with item, score, reason,
    reason_tag, policy, propensity (+ standard error), is_exploration, recommendation_id and the
    chosen arm's features. Randomness is seeded per (user, day): the same inputs give the same rows."""
    out: list[tuple[object, ...]] = []
    for ctx in contexts:
        rng = np.random.default_rng(user_seed(ctx.user_id, day))
        draws = sample_slates(policy, ctx, k, rng, n_draws)
        _, flat, _ = item_codes(ctx)
        prop, se = draws.propensity()
        rid = recommendation_id(run_id, ctx.user_id)
        for j in range(k):
            code = int(draws.items[0, j])
            if code < 0:
                continue
            t = int(draws.tags[0, j])
            tag = ctx.tags[t]
            item = str(flat[code])
            is_expl = bool(draws.explore[0, j])
            if is_expl:
                reason = f"something new for you: {tag_label(tag, labels)}"
            else:
                reason = ctx.reasons.get(item) or f"because you like {tag_label(tag, labels)}"
            feats = arm_features_json(ctx.features[t])
            out.append(
                (
                    ctx.user_id,
                    j + 1,
                    item,
                    float(draws.scores[0, j]),
                    reason,
                    tag,
                    policy.name,
                    float(prop[j]),
                    float(se[j]),
                    is_expl,
                    rid,
                    feats,
                )
            )
    return pd.DataFrame(
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
            C.ARM_FEATURES,
        ],
    )
