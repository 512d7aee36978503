"""Off-policy evaluation of slate policies on the platform's own logs.

A round is one shown slot: (logged context, slot, item, click, logged propensity). The evaluation
policy is replayed on the *logged* context with the Monte Carlo sampler of ``ml.explore.slate``
(``n_draws`` slates, seeded per recommendation_id), which gives pi_e(item | context, slot) for the
logged item and the distribution of items pi_e would show in that slot. The reward model is a
cross-fitted logistic regression of clicks on [user x tag features of the item's tag, the item's
within-tag score, slot one-hot]. Position-wise, as on the Open Bandit Dataset: the value is the
expected click-through rate per shown slot.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.explore import columns as C
from ml.explore.context import SlateContext
from ml.explore.defaults import DEFAULT_REWARD
from ml.explore.policies import SlatePolicy
from ml.explore.reward import with_reward
from ml.explore.slate import item_codes, sample_slates
from ml.ope.estimators import RoundTerms, bootstrap_counts
from ml.ope.reward_model import choose_c, fit_reward_model, folds, linear_parts, sigmoid
from ml.ope.select import choose, standard_estimators


@dataclass
class LoggedRounds:
    """Rounds usable for OPE: each row of ``rows`` has a logged context and a propensity.

    ``rows`` holds recommendation_id, position (1-based), item_id, clicked, reward, propensity;
    ``design`` (n, d) the reward-model features of the logged (tag, item, slot); ``codes`` (n,)
    each row's item as a code into its context's flattened items (:func:`item_codes`)."""

    rows: pd.DataFrame
    contexts: dict[str, SlateContext]
    k: int
    design: np.ndarray
    codes: np.ndarray

    def with_reward(self, reward: str) -> LoggedRounds:
        """The same rounds with ``reward`` (``ml.explore.reward``) as their reward column."""
        return LoggedRounds(with_reward(self.rows, reward), self.contexts, self.k, self.design, self.codes)


def _item_features(ctx: SlateContext, code: int, offsets: np.ndarray, slot: int, k: int) -> np.ndarray:
    t = int(np.searchsorted(offsets, code, side="right") - 1)
    rank = code - offsets[t]
    pos = np.zeros(max(k - 1, 0))
    if slot > 0:
        pos[slot - 1] = 1.0
    return np.r_[ctx.features[t], ctx.item_scores[t][rank], pos]


def prepare(
    feedback: pd.DataFrame, contexts: dict[str, SlateContext], k: int, reward: str = DEFAULT_REWARD
) -> tuple[LoggedRounds, dict[str, int]]:
    """Keep rounds with a propensity, a logged context and the logged item in it; their
    ``reward`` column is the ``reward`` outcome (``ml.explore.reward``).

    Returns the rounds and counts of the rows left out by reason (nothing is dropped silently)."""
    feedback = with_reward(feedback, reward)
    fb = feedback[feedback[C.HAS_PROPENSITY].astype(bool)] if len(feedback) else feedback
    skipped = {"no_propensity": int(len(feedback) - len(fb))}
    keep, design, codes = [], [], []
    no_ctx = not_in_ctx = 0
    cache: dict[str, tuple[np.ndarray, dict[str, int]]] = {}
    for i, (rid, pos, item) in enumerate(zip(fb[C.RECOMMENDATION_ID], fb[C.POSITION], fb["item_id"], strict=True)):
        ctx = contexts.get(rid)
        if ctx is None:
            no_ctx += 1
            continue
        if rid not in cache:
            off, _, idx = item_codes(ctx)
            cache[rid] = (off, idx)
        off, idx = cache[rid]
        code = idx.get(str(item))
        if code is None or int(pos) > k:
            not_in_ctx += 1
            continue
        keep.append(i)
        codes.append(code)
        design.append(_item_features(ctx, code, off, int(pos) - 1, k))
    skipped.update({"no_logged_context": no_ctx, "item_not_in_context": not_in_ctx})
    rows = fb.iloc[keep].reset_index(drop=True)
    d = np.asarray(design, dtype=np.float64) if design else np.zeros((0, 1))
    return LoggedRounds(rows, contexts, k, d, np.asarray(codes, dtype=np.int64)), skipped


def _seed(rid: str) -> int:
    return int.from_bytes(hashlib.sha256(f"ope|{rid}".encode()).digest()[:8], "little")


@dataclass(frozen=True)
class RewardModels:
    """The cross-fitted reward models of a set of logged rounds, fitted once for every policy
    evaluated on them (they depend on the rounds, not on the policy).

    Folds are drawn per slate (recommendation_id), so rounds of one slate are always predicted by
    a model that saw none of them. Each fold's model is kept as its linear parts: the expected
    reward of an item in a slot is ``sigmoid(features[tag] . w_f + score * w_s + w_slot + b) * value``,
    the same number as the fitted model's prediction on the design row :func:`prepare` builds."""

    fold: np.ndarray  # (n,) fold id of each round
    coef: np.ndarray  # (n_folds, d)
    intercept: np.ndarray  # (n_folds,)
    value: np.ndarray  # (n_folds,) mean positive reward of the fold model's data

    @classmethod
    def fit(cls, rounds: LoggedRounds, n_folds: int = 3, random_state: int = 0) -> RewardModels:
        rows = rounds.rows
        y = rows[C.REWARD].to_numpy(np.float64)
        n, d = rounds.design.shape
        _, slate = np.unique(rows[C.RECOMMENDATION_ID].to_numpy(), return_inverse=True)
        fold = folds(int(slate.max()) + 1, n_folds, random_state)[slate] if n else np.zeros(0, dtype=np.int64)
        C_reg = choose_c(rounds.design, y, random_state=random_state) if n else 1.0
        models = [fit_reward_model(rounds.design[fold != f], y[fold != f], C_reg, random_state) for f in range(n_folds)]
        parts = [linear_parts(m.classifier, d) for m in models]
        return cls(
            fold=fold,
            coef=np.array([w for w, _ in parts]).reshape(n_folds, d),
            intercept=np.array([b for _, b in parts]),
            value=np.array([m.value for m in models]),
        )

    def slate_values(self, ctx: SlateContext, k: int, fold: int) -> np.ndarray:
        """Expected reward of every item of ``ctx`` (flattened codes) in each of ``k`` slots by
        fold ``fold``'s model, shape (n_items, k)."""
        w = self.coef[fold]
        f = ctx.features.shape[1]
        per_tag = np.asarray(ctx.features, dtype=np.float64) @ w[:f]
        lengths = [len(s) for s in ctx.item_scores]
        per_item = np.repeat(per_tag, lengths) + np.concatenate(ctx.item_scores) * w[f]
        per_slot = np.r_[0.0, w[f + 1 : f + k]]
        return sigmoid(per_item[:, None] + per_slot[None, :] + self.intercept[fold]) * self.value[fold]


def round_terms(
    policy: SlatePolicy,
    rounds: LoggedRounds,
    n_draws: int = 128,
    models: RewardModels | None = None,
    random_state: int = 0,
) -> RoundTerms:
    """Per-round terms of ``policy`` on the logged rounds (see module docstring), with the
    rounds' reward ``models`` (fitted here when None)."""
    models = models or RewardModels.fit(rounds, random_state=random_state)
    rows = rounds.rows
    n = len(rows)
    q_logged, pi_e, q_policy = np.zeros(n), np.zeros(n), np.zeros(n)
    slots = rows[C.POSITION].to_numpy(np.int64) - 1
    uniq, inv = np.unique(rows[C.RECOMMENDATION_ID].to_numpy(), return_inverse=True)
    order = np.argsort(inv, kind="stable")
    bounds = np.searchsorted(inv[order], np.arange(len(uniq) + 1))
    for g, rid in enumerate(uniq):
        idx = order[bounds[g] : bounds[g + 1]]
        ctx = rounds.contexts[str(rid)]
        q = models.slate_values(ctx, rounds.k, int(models.fold[idx[0]]))
        shown = sample_slates(policy, ctx, rounds.k, np.random.default_rng(_seed(str(rid))), n_draws).items
        filled = shown >= 0
        # the policy's expected reward per slot: the mean over its filled draws
        per_slot = np.where(filled, q[np.maximum(shown, 0), np.arange(rounds.k)], 0.0).sum(0)
        per_slot /= np.maximum(filled.sum(0), 1)
        slot, code = slots[idx], rounds.codes[idx]
        pi_e[idx] = (shown[:, slot] == code).mean(axis=0)
        q_logged[idx] = q[code, slot]
        q_policy[idx] = per_slot[slot]
    pscore = rows[C.PROPENSITY].to_numpy(np.float64)
    return RoundTerms(rows[C.REWARD].to_numpy(np.float64), pi_e / pscore, slots, q_logged, q_policy)


@dataclass(frozen=True)
class PolicyEstimate:
    """One policy's value on the logs by the chosen estimator, plus every estimator's value."""

    chosen: str
    estimate: float
    ci_low: float
    ci_high: float
    n: int
    by_estimator: dict[str, tuple[float, float, float]]


def estimate_policy(
    policy: SlatePolicy,
    rounds: LoggedRounds,
    n_draws: int = 128,
    n_bootstrap: int = 200,
    models: RewardModels | None = None,
    random_state: int = 0,
) -> PolicyEstimate:
    """All estimators with bootstrap CIs; ``chosen`` by the rule of ``ml.ope.select``. Pass the
    rounds' reward ``models`` when evaluating several policies on the same rounds."""
    t = round_terms(policy, rounds, n_draws=n_draws, models=models, random_state=random_state)
    if t.n == 0:
        raise ValueError("no logged rounds with a propensity and a logged context to evaluate on")
    counts = bootstrap_counts(t.n, n_bootstrap, random_state)
    ests = standard_estimators(t, counts)
    chosen, _ = choose(ests, t, counts)
    by = {}
    for name, est in ests.items():
        iv = est.estimate_interval(t, counts=counts)
        by[name] = (iv.estimate, iv.ci_low, iv.ci_high)
    e, lo, hi = by[chosen]
    return PolicyEstimate(chosen, e, lo, hi, t.n, by)
