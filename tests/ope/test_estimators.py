"""Estimators: unbiased on simulated logs with a known truth, and their limits."""

from __future__ import annotations

import numpy as np
import pytest

from ml.ope.estimators import (
    DR_FAMILY,
    DirectMethod,
    DoublyRobust,
    DRShrinkage,
    InversePropensityScoring,
    RoundTerms,
    SelfNormalizedDR,
    SelfNormalizedIPS,
    SwitchDR,
    bootstrap_counts,
    make_estimator,
)
from ml.ope.select import choose, estimated_mse, standard_estimators

pytestmark = pytest.mark.unit

N_ACTIONS, LEN_LIST, DIM = 6, 2, 3


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class World:
    """A contextual slate bandit with known expected rewards q*(x, a, k)."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.theta = rng.normal(size=(DIM, N_ACTIONS))
        self.pos_bias = np.array([1.0, 0.6])
        self.logit_b = rng.normal(size=(DIM, N_ACTIONS)) * 0.5
        self.logit_e = self.theta * 1.5

    def q_true(self, x: np.ndarray) -> np.ndarray:
        base = 1 / (1 + np.exp(-(x @ self.theta)))  # (n, A)
        return 0.5 * base[:, :, None] * self.pos_bias[None, None, :]

    def dist(self, x: np.ndarray, logit: np.ndarray) -> np.ndarray:
        p = _softmax(x @ logit)
        return np.repeat(p[:, :, None], LEN_LIST, axis=2)  # same distribution in every slot

    def log(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        x = rng.normal(size=(n, DIM))
        pb = self.dist(x, self.logit_b)
        pos = rng.integers(0, LEN_LIST, n)
        cdf = np.cumsum(pb[np.arange(n), :, pos], axis=1)
        a = (rng.random(n)[:, None] > cdf).sum(axis=1)
        q = self.q_true(x)
        r = (rng.random(n) < q[np.arange(n), a, pos]).astype(float)
        return {"x": x, "a": a, "pos": pos, "r": r, "pscore": pb[np.arange(n), a, pos], "q": q}

    def truth(self, x: np.ndarray, pos: np.ndarray) -> float:
        """V(pi_e) for the given contexts and slots: the exact expected reward per round."""
        pe = self.dist(x, self.logit_e)
        q = self.q_true(x)
        n = len(x)
        return float(np.mean(np.sum(pe[np.arange(n), :, pos] * q[np.arange(n), :, pos], axis=1)))


def _terms(world: World, lg: dict[str, np.ndarray], q_model: np.ndarray | None) -> RoundTerms:
    pe = world.dist(lg["x"], world.logit_e)
    return RoundTerms.from_arrays(lg["r"], lg["a"], lg["pos"], lg["pscore"], pe, q_model)


@pytest.mark.parametrize(
    "estimator,model",
    [
        (InversePropensityScoring(), "none"),
        (DoublyRobust(), "biased"),
        (DoublyRobust(), "constant"),
        (DirectMethod(), "true"),
        (SwitchDR(tau=float("inf")), "biased"),
        (DRShrinkage(lambda_=float("inf")), "constant"),
    ],
)
def test_unbiased_on_simulated_logs(estimator, model):
    """Averaged over many independent logs, the estimate matches the known policy value."""
    world = World(seed=1)
    rng = np.random.default_rng(2)
    errors = []
    for _ in range(300):
        lg = world.log(400, rng)
        q = {
            "none": None,
            "true": lg["q"],
            "biased": lg["q"] * 0.6 + 0.05,  # a wrong reward model: DR must stay unbiased
            "constant": np.full_like(lg["q"], lg["r"].mean()),
        }[model]
        t = _terms(world, lg, q)
        errors.append(estimator.estimate(t) - world.truth(lg["x"], lg["pos"]))
    errors_arr = np.asarray(errors)
    se = errors_arr.std(ddof=1) / np.sqrt(len(errors_arr))
    assert abs(errors_arr.mean()) < 4 * se + 1e-12


def test_self_normalised_estimators_are_consistent():
    """SNIPS and SNDR are biased in small logs but converge to the truth on a large one."""
    world = World(seed=3)
    lg = world.log(200_000, np.random.default_rng(4))
    t = _terms(world, lg, lg["q"] * 0.7)
    truth = world.truth(lg["x"], lg["pos"])
    for est in (SelfNormalizedIPS(), SelfNormalizedDR()):
        assert est.estimate(t) == pytest.approx(truth, rel=0.03)


def test_evaluating_the_logging_policy_returns_its_on_policy_value():
    world = World(seed=5)
    rng = np.random.default_rng(6)
    lg = world.log(5_000, rng)
    pb = world.dist(lg["x"], world.logit_b)
    on_policy = lg["r"].mean()
    t = RoundTerms.from_arrays(lg["r"], lg["a"], lg["pos"], lg["pscore"], pb, lg["q"] * 0.5)
    assert np.allclose(t.weight, 1.0)
    assert InversePropensityScoring().estimate(t) == pytest.approx(on_policy)
    assert SelfNormalizedIPS().estimate(t) == pytest.approx(on_policy)
    # a deterministic logging policy evaluated against itself: every estimator but DM is exact
    onehot = np.zeros_like(pb)
    onehot[np.arange(len(lg["a"])), lg["a"], lg["pos"]] = 1.0
    td = RoundTerms.from_arrays(lg["r"], lg["a"], lg["pos"], np.ones(len(lg["a"])), onehot, lg["q"] * 0.5)
    for name in ("ips", "snips", "dr", "sndr"):
        assert make_estimator(name).estimate(td) == pytest.approx(on_policy), name


def test_shrinkage_and_switch_limits_are_dm_and_dr():
    world = World(seed=7)
    lg = world.log(3_000, np.random.default_rng(8))
    t = _terms(world, lg, lg["q"] * 0.8)
    dm, dr = DirectMethod().estimate(t), DoublyRobust().estimate(t)
    assert SwitchDR(tau=0.0).estimate(t) == pytest.approx(dm)
    assert SwitchDR(tau=float("inf")).estimate(t) == pytest.approx(dr)
    assert DRShrinkage(lambda_=0.0).estimate(t) == pytest.approx(dm)
    assert DRShrinkage(lambda_=float("inf")).estimate(t) == pytest.approx(dr)
    assert DRShrinkage(lambda_=1e12).estimate(t) == pytest.approx(dr, rel=1e-6)


def test_direct_method_with_the_true_reward_model_is_exact():
    world = World(seed=9)
    lg = world.log(2_000, np.random.default_rng(10))
    t = _terms(world, lg, lg["q"])
    assert DirectMethod().estimate(t) == pytest.approx(world.truth(lg["x"], lg["pos"]))


def test_bootstrap_interval_brackets_the_estimate_and_narrows_with_data():
    world = World(seed=11)
    rng = np.random.default_rng(12)
    widths = []
    for n in (500, 8_000):
        lg = world.log(n, rng)
        t = _terms(world, lg, lg["q"] * 0.9)
        iv = DoublyRobust().estimate_interval(t, n_bootstrap=300, random_state=0)
        assert iv.ci_low <= iv.estimate <= iv.ci_high
        assert iv.n == n
        again = DoublyRobust().estimate_interval(t, n_bootstrap=300, random_state=0)
        assert (again.ci_low, again.ci_high) == (iv.ci_low, iv.ci_high)
        widths.append(iv.ci_high - iv.ci_low)
    assert widths[1] < widths[0] / 2


def test_position_wise_values_average_to_the_overall_value():
    world = World(seed=13)
    lg = world.log(4_000, np.random.default_rng(14))
    t = _terms(world, lg, lg["q"])
    for est in (InversePropensityScoring(), DoublyRobust(), DirectMethod()):
        by_pos = est.estimate_by_position(t)
        share = {p: np.mean(t.position == p) for p in by_pos}
        assert sum(by_pos[p] * share[p] for p in by_pos) == pytest.approx(est.estimate(t))


def test_bad_inputs_are_rejected_with_a_clear_error():
    with pytest.raises(ValueError, match="pscore must be > 0"):
        RoundTerms.from_arrays(np.ones(2), np.zeros(2, int), None, np.array([0.5, 0.0]), np.ones((2, 1, 1)))
    with pytest.raises(ValueError, match="needs a reward model"):
        DoublyRobust().estimate(RoundTerms(np.ones(3), np.ones(3), np.zeros(3, int)))
    with pytest.raises(ValueError, match="tau"):
        SwitchDR(tau=-1.0)
    with pytest.raises(ValueError, match="lambda"):
        DRShrinkage(lambda_=-1.0)
    with pytest.raises(ValueError, match="unknown estimator"):
        make_estimator("magic")


def test_selection_rule_uses_only_the_log_and_returns_a_dr_family_member():
    world = World(seed=15)
    lg = world.log(3_000, np.random.default_rng(16))
    t = _terms(world, lg, lg["q"] * 0.8)
    counts = bootstrap_counts(t.n, 200, 0)
    ests = standard_estimators(t, counts)
    assert set(ests) == {"dm", "ips", "snips", "dr", "sndr", "switch-dr", "dros"}
    name, scores = choose(ests, t, counts)
    assert name in DR_FAMILY and set(scores) == set(DR_FAMILY)
    assert scores[name].mse == min(s.mse for s in scores.values())
    assert all(s.mse >= s.variance >= 0 for s in scores.values())
    # DR against itself has no estimated bias
    assert estimated_mse(DoublyRobust(), t, counts).bias2 == 0.0
