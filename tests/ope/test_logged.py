"""OPE on the platform's own logs: the reward models fitted once per window predict what the
fitted models predict, and the per-slate terms equal a per-round reference computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.explore import columns as C
from ml.explore.context import FEATURES, SlateContext
from ml.explore.policies import make_policy
from ml.explore.slate import item_codes, sample_slates
from ml.ope.logged import RewardModels, _item_features, _seed, estimate_policy, prepare, round_terms
from ml.ope.reward_model import choose_c, fit_reward_model, folds

pytestmark = pytest.mark.unit

K = 4


def _context(user: str, rng: np.random.Generator) -> SlateContext:
    tags = [f"cat:t{j}" for j in range(5)]
    known = np.array([True, True, False, False, False])
    feats = rng.uniform(0, 1, (len(tags), len(FEATURES)))
    feats[:, 0] = 1.0
    feats[:, 1] = known
    n_items = rng.integers(2, 6, len(tags))
    return SlateContext(
        user_id=user,
        tags=tags,
        known=known,
        prior_mean=np.where(known, 0.2, 0.05),
        prior_strength=np.where(known, 15.0, 5.0),
        impressions=rng.integers(0, 20, len(tags)).astype(float),
        clicks=np.zeros(len(tags)),
        features=feats,
        items=[np.array([f"{t}-i{m}" for m in range(n)], dtype=object) for t, n in zip(tags, n_items, strict=True)],
        item_scores=[np.sort(rng.uniform(0.2, 1.0, n))[::-1] for n in n_items],
    )


@pytest.fixture(scope="module")
def logged() -> tuple[pd.DataFrame, dict[str, SlateContext]]:
    """Slates logged by epsilon-greedy for 150 users; clicks and revenue depend on the tag's
    'weight' feature and the slot, so a reward model has something to learn."""
    rng = np.random.default_rng(7)
    logging_policy = make_policy("epsilon_greedy", epsilon=0.3)
    rows, contexts = [], {}
    for u in range(150):
        rid = f"rec-{u}"
        ctx = contexts[rid] = _context(f"u{u}", rng)
        draws = sample_slates(logging_policy, ctx, K, np.random.default_rng(u), n_draws=200)
        propensity, _ = draws.propensity()
        _, flat, _ = item_codes(ctx)
        for slot in range(K):
            tag = int(draws.tags[0, slot])
            p_click = 0.05 + 0.4 * ctx.features[tag, FEATURES.index("weight")] / (1 + slot)
            clicked = bool(rng.uniform() < p_click)
            rows.append(
                {
                    C.RECOMMENDATION_ID: rid,
                    C.POSITION: slot + 1,
                    "item_id": flat[draws.items[0, slot]],
                    C.CLICKED: clicked,
                    C.REVENUE: float(rng.uniform(5, 50)) if clicked and rng.uniform() < 0.5 else 0.0,
                    C.PROPENSITY: float(propensity[slot]),
                    C.HAS_PROPENSITY: True,
                }
            )
    return pd.DataFrame(rows), contexts


@pytest.mark.parametrize("reward", ["click", "revenue"])
def test_reward_models_predict_what_each_folds_fitted_model_predicts(logged, reward):
    feedback, contexts = logged
    rounds, skipped = prepare(feedback, contexts, K, reward)
    assert len(rounds.rows) == len(feedback) and sum(skipped.values()) == 0
    models = RewardModels.fit(rounds)
    y = rounds.rows[C.REWARD].to_numpy(np.float64)
    c = choose_c(rounds.design, y)
    slots = rounds.rows[C.POSITION].to_numpy() - 1
    # no slate is split across folds: its rounds are predicted by a model that saw none of them
    assert rounds.rows.assign(fold=models.fold).groupby(C.RECOMMENDATION_ID)["fold"].nunique().max() == 1
    for f in range(3):
        fitted = fit_reward_model(rounds.design[models.fold != f], y[models.fold != f], c)
        mine = np.flatnonzero(models.fold == f)
        expected = fitted.expected(rounds.design[mine])
        got = [
            models.slate_values(contexts[rid], K, f)[rounds.codes[i], slots[i]]
            for i, rid in zip(mine, rounds.rows[C.RECOMMENDATION_ID].to_numpy()[mine], strict=True)
        ]
        np.testing.assert_allclose(got, expected, rtol=1e-9)
    if reward == "revenue":  # the hurdle model's scale is the mean positive revenue, not 1
        assert models.value.min() > 5


def _reference_terms(policy, rounds, n_draws: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pi_e, q_logged, q_policy round by round from each slot's sampled distribution and the
    fitted models' predictions on design rows (the computation before the models were shared)."""
    rows = rounds.rows
    y = rows[C.REWARD].to_numpy(np.float64)
    uniq, inv = np.unique(rows[C.RECOMMENDATION_ID].to_numpy(), return_inverse=True)
    fold = folds(len(uniq), 3, 0)[inv]
    c = choose_c(rounds.design, y)
    fitted = [fit_reward_model(rounds.design[fold != f], y[fold != f], c) for f in range(3)]
    pi_e, q_logged, q_policy = (np.zeros(len(rows)) for _ in range(3))
    for i, (rid, pos, item) in enumerate(
        zip(rows[C.RECOMMENDATION_ID], rows[C.POSITION], rows["item_id"], strict=True)
    ):
        ctx, slot, model = rounds.contexts[rid], int(pos) - 1, fitted[fold[i]]
        offsets, _, index = item_codes(ctx)
        draws = sample_slates(policy, ctx, rounds.k, np.random.default_rng(_seed(rid)), n_draws)
        code = index[item]
        pi_e[i] = draws.slot_probability(slot, code)
        q_logged[i] = model.expected(_item_features(ctx, code, offsets, slot, rounds.k)[None, :])[0]
        cands, probs = draws.slot_distribution(slot)
        design = np.array([_item_features(ctx, int(c2), offsets, slot, rounds.k) for c2 in cands])
        q_policy[i] = float(probs @ model.expected(design))
    return pi_e, q_logged, q_policy


@pytest.mark.parametrize("name", ["greedy", "ucb1", "slot_allocator"])
def test_round_terms_equal_the_per_round_reference(logged, name):
    feedback, contexts = logged
    rounds, _ = prepare(feedback, contexts, K, "click")
    policy = make_policy(name)
    terms = round_terms(policy, rounds, n_draws=64)
    pi_e, q_logged, q_policy = _reference_terms(policy, rounds, 64)
    pscore = rounds.rows[C.PROPENSITY].to_numpy()
    np.testing.assert_allclose(terms.weight, pi_e / pscore, rtol=1e-12)
    np.testing.assert_allclose(terms.q_logged, q_logged, rtol=1e-9)
    np.testing.assert_allclose(terms.q_policy, q_policy, rtol=1e-9)
    assert (terms.q_policy > 0).all() and (terms.weight > 0).any()


def test_one_fit_of_the_reward_models_serves_every_policy(logged):
    feedback, contexts = logged
    rounds, _ = prepare(feedback, contexts, K, "click")
    shared = RewardModels.fit(rounds)
    estimates = {}
    for name in ("greedy", "thompson"):
        alone = estimate_policy(make_policy(name), rounds, n_draws=64, n_bootstrap=50)
        with_shared = estimate_policy(make_policy(name), rounds, n_draws=64, n_bootstrap=50, models=shared)
        assert with_shared == alone
        estimates[name] = alone.estimate
    assert estimates["greedy"] != estimates["thompson"]  # the shared part is not the whole answer
