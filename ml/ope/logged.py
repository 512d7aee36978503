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
from ml.ope.reward_model import choose_c, fit_reward_model, folds
from ml.ope.select import choose, standard_estimators


@dataclass
class LoggedRounds:
    """Rounds usable for OPE: each row of ``rows`` has a logged context and a propensity.

    ``rows`` holds recommendation_id, position (1-based), item_id, clicked, reward, propensity;
    ``design`` (n, d) the reward-model features of the logged (tag, item, slot)."""

    rows: pd.DataFrame
    contexts: dict[str, SlateContext]
    k: int
    design: np.ndarray


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
    keep, design = [], []
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
        design.append(_item_features(ctx, code, off, int(pos) - 1, k))
    skipped.update({"no_logged_context": no_ctx, "item_not_in_context": not_in_ctx})
    rows = fb.iloc[keep].reset_index(drop=True)
    d = np.asarray(design, dtype=np.float64) if design else np.zeros((0, 1))
    return LoggedRounds(rows, contexts, k, d), skipped


def _seed(rid: str) -> int:
    return int.from_bytes(hashlib.sha256(f"ope|{rid}".encode()).digest()[:8], "little")


def _all_item_design(ctx: SlateContext, k: int) -> np.ndarray:
    """Reward-model features of every item of a context in every slot, shape (n_items, k, d)."""
    base = np.concatenate(
        [np.c_[np.repeat(ctx.features[t][None, :], len(s), axis=0), s] for t, s in enumerate(ctx.item_scores)]
    )
    pos = np.eye(k)[:, 1:] if k > 1 else np.zeros((k, 0))
    return np.concatenate(
        [np.repeat(base[:, None, :], k, axis=1), np.repeat(pos[None, :, :], len(base), axis=0)], axis=2
    )


def round_terms(
    policy: SlatePolicy, rounds: LoggedRounds, n_draws: int = 128, n_folds: int = 3, random_state: int = 0
) -> RoundTerms:
    """Per-round terms of ``policy`` on the logged rounds (see module docstring).

    Cross-fitting folds are drawn per slate (recommendation_id), so rounds of one slate are
    always predicted by a model that saw none of them."""
    rows = rounds.rows
    n = len(rows)
    y = rows[C.REWARD].to_numpy(np.float64)
    rids = rows[C.RECOMMENDATION_ID].to_numpy()
    uniq, inv = np.unique(rids, return_inverse=True)
    fid = folds(len(uniq), n_folds, random_state)[inv] if n else np.zeros(0, dtype=np.int64)
    C_reg = choose_c(rounds.design, y, random_state=random_state) if n else 1.0
    models = [fit_reward_model(rounds.design[fid != f], y[fid != f], C_reg, random_state) for f in range(n_folds)]
    q_logged = np.zeros(n)
    pi_e = np.zeros(n)
    q_policy = np.zeros(n)
    slots = rows[C.POSITION].to_numpy(np.int64) - 1
    items = rows["item_id"].astype(str).to_numpy()
    for g in range(len(uniq)):
        idx = np.flatnonzero(inv == g)
        rid = str(uniq[g])
        ctx = rounds.contexts[rid]
        model = models[int(fid[idx[0]])]
        draws = sample_slates(policy, ctx, rounds.k, np.random.default_rng(_seed(rid)), n_draws)
        _, _, codes = item_codes(ctx)
        X = _all_item_design(ctx, rounds.k)
        n_items = X.shape[0]
        q = model.expected(X.reshape(n_items * rounds.k, -1)).reshape(n_items, rounds.k)
        for i in idx:
            slot, code = int(slots[i]), codes[items[i]]
            pi_e[i] = draws.slot_probability(slot, code)
            q_logged[i] = q[code, slot]
            cands, probs = draws.slot_distribution(slot)
            q_policy[i] = float(probs @ q[cands, slot]) if len(cands) else 0.0
    pscore = rows[C.PROPENSITY].to_numpy(np.float64)
    return RoundTerms(y, pi_e / pscore, slots, q_logged, q_policy)


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
    policy: SlatePolicy, rounds: LoggedRounds, n_draws: int = 128, n_bootstrap: int = 200, random_state: int = 0
) -> PolicyEstimate:
    """All estimators with bootstrap CIs; ``chosen`` by the rule of ``ml.ope.select``."""
    t = round_terms(policy, rounds, n_draws=n_draws, random_state=random_state)
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
