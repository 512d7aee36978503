"""Off-policy estimators: small dataclasses with one uniform method.

Notation (as in the Open Bandit Pipeline): a log of ``n`` rounds, each a (context ``x_i``,
action ``a_i``, slot ``k_i``, reward ``r_i``) shown by the logging policy ``pi_b`` with
probability ``pscore_i = pi_b(a_i | x_i, k_i)``. An evaluation policy ``pi_e`` is given by its
position-wise action distribution ``action_dist`` of shape (n, n_actions, len_list); a reward
model by ``estimated_rewards`` ``q(x_i, a, k)`` of the same shape.

Every estimator reduces a log to per-round terms (:class:`RoundTerms`): the importance weight
``w_i = pi_e(a_i|x_i,k_i) / pscore_i``, the reward model at the logged action ``q_logged_i`` and
under the evaluation policy ``q_policy_i = sum_a pi_e(a|x_i,k_i) q(x_i,a,k_i)``. Each estimator is
then ``mean(a) + sum(b) / sum(c)`` of three per-round arrays, which makes bootstrap intervals one
matrix product. Position-wise evaluation (the slot of each round) follows the Open Bandit
Dataset: the value is the expected reward per impression, and ``estimate_by_position`` splits it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np


@dataclass(frozen=True)
class RoundTerms:
    """Per-round quantities of a log, each of shape (n,).

    ``reward``: observed reward (e.g. click 0/1); ``weight``: pi_e / pi_b at the logged action
    and slot; ``position``: 0-based slot; ``q_logged`` / ``q_policy``: reward-model predictions
    at the logged action and averaged over pi_e (``None`` when there is no reward model).
    """

    reward: np.ndarray
    weight: np.ndarray
    position: np.ndarray
    q_logged: np.ndarray | None = None
    q_policy: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.reward)
        for name in ("weight", "position", "q_logged", "q_policy"):
            arr = getattr(self, name)
            if arr is not None and len(arr) != n:
                raise ValueError(f"RoundTerms.{name} has {len(arr)} rounds, reward has {n}")
        if n and not np.isfinite(self.weight).all():
            raise ValueError("RoundTerms.weight must be finite (is a logged propensity zero?)")
        if n and (self.weight < 0).any():
            raise ValueError("RoundTerms.weight must be >= 0")

    @property
    def n(self) -> int:
        return len(self.reward)

    def subset(self, mask: np.ndarray) -> RoundTerms:
        return RoundTerms(
            self.reward[mask],
            self.weight[mask],
            self.position[mask],
            None if self.q_logged is None else self.q_logged[mask],
            None if self.q_policy is None else self.q_policy[mask],
        )

    @classmethod
    def from_arrays(
        cls,
        reward: np.ndarray,
        action: np.ndarray,
        position: np.ndarray | None,
        pscore: np.ndarray,
        action_dist: np.ndarray,
        estimated_rewards_by_reg_model: np.ndarray | None = None,
    ) -> RoundTerms:
        """Build the terms from OBP-shaped arrays (see the module docstring for shapes)."""
        reward = np.asarray(reward, dtype=np.float64)
        action = np.asarray(action, dtype=np.int64)
        n = len(reward)
        position = np.zeros(n, dtype=np.int64) if position is None else np.asarray(position, dtype=np.int64)
        pscore = np.asarray(pscore, dtype=np.float64)
        if action_dist.ndim != 3 or action_dist.shape[0] != n:
            raise ValueError(
                f"action_dist must have shape (n_rounds={n}, n_actions, len_list), got {action_dist.shape}"
            )
        if (pscore <= 0).any():
            bad = np.flatnonzero(pscore <= 0)[:5].tolist()
            raise ValueError(f"pscore must be > 0 for every logged round; rounds {bad} are not")
        rows = np.arange(n)
        pi_e = action_dist[rows, action, position]
        q_logged = q_policy = None
        if estimated_rewards_by_reg_model is not None:
            q = estimated_rewards_by_reg_model
            if q.shape != action_dist.shape:
                raise ValueError(f"estimated rewards shape {q.shape} differs from action_dist {action_dist.shape}")
            q_logged = q[rows, action, position]
            q_policy = np.einsum("na,na->n", action_dist[rows, :, position], q[rows, :, position])
        return cls(reward, pi_e / pscore, position, q_logged, q_policy)


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile-bootstrap confidence interval (same units as reward)."""

    estimate: float
    ci_low: float
    ci_high: float
    std_error: float
    n: int


def bootstrap_counts(n: int, n_bootstrap: int, random_state: int | np.random.Generator = 0) -> np.ndarray:
    """Resampling counts of shape (n_bootstrap, n): row b says how often each round is drawn."""
    rng = random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)
    if n == 0:
        return np.zeros((n_bootstrap, 0), dtype=np.float64)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_bootstrap).astype(np.float64)


@dataclass
class OffPolicyEstimator(ABC):
    """Interface: ``estimate_policy_value`` (OBP arrays) or ``estimate`` (round terms)."""

    name: ClassVar[str] = "base"
    needs_reward_model: ClassVar[bool] = False

    @abstractmethod
    def parts(self, t: RoundTerms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-round arrays (a, b, c) with value = mean(a) + sum(b) / sum(c)."""

    def _require_model(self, t: RoundTerms) -> tuple[np.ndarray, np.ndarray]:
        if t.q_logged is None or t.q_policy is None:
            raise ValueError(f"estimator {self.label} needs a reward model (estimated_rewards_by_reg_model)")
        return t.q_logged, t.q_policy

    @property
    def label(self) -> str:
        """The name with its hyper-parameters, e.g. ``dros(lambda=10)``."""
        return self.name

    def estimate(self, t: RoundTerms) -> float:
        """The estimated policy value (expected reward per round)."""
        if t.n == 0:
            raise ValueError(f"{self.label}: no logged rounds to estimate from")
        a, b, c = self.parts(t)
        den = c.sum()
        return float(a.mean() + (b.sum() / den if den > 0 else 0.0))

    def estimate_policy_value(
        self,
        reward: np.ndarray,
        action: np.ndarray,
        position: np.ndarray | None,
        pscore: np.ndarray,
        action_dist: np.ndarray,
        estimated_rewards_by_reg_model: np.ndarray | None = None,
    ) -> float:
        """OBP-style entry point; shapes as in the module docstring."""
        t = RoundTerms.from_arrays(reward, action, position, pscore, action_dist, estimated_rewards_by_reg_model)
        return self.estimate(t)

    def bootstrap(self, t: RoundTerms, counts: np.ndarray) -> np.ndarray:
        """Estimates on resampled logs: ``counts`` of shape (B, n) -> values of shape (B,)."""
        a, b, c = self.parts(t)
        num = counts @ b
        den = counts @ c
        ratio = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        return counts @ a / t.n + ratio

    def estimate_interval(
        self,
        t: RoundTerms,
        n_bootstrap: int = 200,
        alpha: float = 0.05,
        random_state: int | np.random.Generator = 0,
        counts: np.ndarray | None = None,
    ) -> Interval:
        """Point estimate with a (1 - alpha) percentile-bootstrap interval over rounds."""
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        est = self.estimate(t)
        counts = bootstrap_counts(t.n, n_bootstrap, random_state) if counts is None else counts
        vals = self.bootstrap(t, counts)
        lo, hi = np.quantile(vals, [alpha / 2, 1 - alpha / 2])
        return Interval(est, float(lo), float(hi), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0, t.n)

    def estimate_by_position(self, t: RoundTerms) -> dict[int, float]:
        """Slot-wise values: the estimate restricted to the rounds of each (0-based) position."""
        return {int(p): self.estimate(t.subset(t.position == p)) for p in np.unique(t.position)}


@dataclass
class DirectMethod(OffPolicyEstimator):
    """DM: the reward model averaged over the evaluation policy."""

    name: ClassVar[str] = "dm"
    needs_reward_model: ClassVar[bool] = True

    def parts(self, t: RoundTerms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        _, q_pi = self._require_model(t)
        return q_pi, np.zeros(t.n), np.ones(t.n)


@dataclass
class InversePropensityScoring(OffPolicyEstimator):
    """IPS (IPW): mean of w * r; unbiased when pscores are right and pi_e << pi_b."""

    name: ClassVar[str] = "ips"

    def parts(self, t: RoundTerms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return t.weight * t.reward, np.zeros(t.n), np.ones(t.n)


@dataclass
class SelfNormalizedIPS(OffPolicyEstimator):
    """SNIPS: sum(w r) / sum(w); bounded by the reward range, slightly biased."""

    name: ClassVar[str] = "snips"

    def parts(self, t: RoundTerms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.zeros(t.n), t.weight * t.reward, t.weight


@dataclass
class DoublyRobust(OffPolicyEstimator):
    """DR: DM plus the importance-weighted residual of the reward model."""

    name: ClassVar[str] = "dr"
    needs_reward_model: ClassVar[bool] = True

    def parts(self, t: RoundTerms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        q, q_pi = self._require_model(t)
        return q_pi + t.weight * (t.reward - q), np.zeros(t.n), np.ones(t.n)


@dataclass
class SelfNormalizedDR(OffPolicyEstimator):
    """SNDR: DM plus the self-normalised weighted residual, sum(w (r - q)) / sum(w)."""

    name: ClassVar[str] = "sndr"
    needs_reward_model: ClassVar[bool] = True

    def parts(self, t: RoundTerms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        q, q_pi = self._require_model(t)
        return q_pi, t.weight * (t.reward - q), t.weight


@dataclass
class SwitchDR(OffPolicyEstimator):
    """Switch-DR: the DR correction only where the weight is at most ``tau``; DM elsewhere.

    ``tau = inf`` is DR, ``tau = 0`` is DM."""

    tau: float = float("inf")
    name: ClassVar[str] = "switch-dr"
    needs_reward_model: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not (self.tau >= 0):
            raise ValueError(f"switch-dr: tau must be >= 0, got {self.tau}")

    @property
    def label(self) -> str:
        return f"{self.name}(tau={self.tau:g})"

    def parts(self, t: RoundTerms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        q, q_pi = self._require_model(t)
        keep = t.weight <= self.tau
        return q_pi + np.where(keep, t.weight * (t.reward - q), 0.0), np.zeros(t.n), np.ones(t.n)


@dataclass
class DRShrinkage(OffPolicyEstimator):
    """DRos: DR with optimistic shrinkage, weight w -> lambda w / (w^2 + lambda) (Su et al. 2020).

    ``lambda = 0`` is DM, ``lambda -> inf`` is DR; shrinkage bounds every weight by
    sqrt(lambda) / 2, trading a little bias for much less variance."""

    lambda_: float = 100.0
    name: ClassVar[str] = "dros"
    needs_reward_model: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not (self.lambda_ >= 0):
            raise ValueError(f"dros: lambda_ must be >= 0, got {self.lambda_}")

    @property
    def label(self) -> str:
        return f"{self.name}(lambda={self.lambda_:g})"

    def shrunk_weight(self, w: np.ndarray) -> np.ndarray:
        if np.isinf(self.lambda_):
            return w
        return np.divide(self.lambda_ * w, w**2 + self.lambda_, out=np.zeros_like(w), where=(w**2 + self.lambda_) > 0)

    def parts(self, t: RoundTerms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        q, q_pi = self._require_model(t)
        return q_pi + self.shrunk_weight(t.weight) * (t.reward - q), np.zeros(t.n), np.ones(t.n)


ESTIMATORS: dict[str, type[OffPolicyEstimator]] = {
    cls.name: cls
    for cls in (
        DirectMethod,
        InversePropensityScoring,
        SelfNormalizedIPS,
        DoublyRobust,
        SelfNormalizedDR,
        SwitchDR,
        DRShrinkage,
    )
}
# consistent whenever the logged propensities are right (the reward model only cuts variance)
DR_FAMILY: tuple[str, ...] = ("dr", "sndr", "switch-dr", "dros")


def make_estimator(name: str, **params: float) -> OffPolicyEstimator:
    if name not in ESTIMATORS:
        raise ValueError(f"unknown estimator {name!r}; choose one of {sorted(ESTIMATORS)}")
    return ESTIMATORS[name](**params)


@dataclass
class EstimatorSet:
    """A named set of estimators evaluated on the same log and the same bootstrap resamples."""

    estimators: dict[str, OffPolicyEstimator] = field(default_factory=dict)

    def intervals(
        self, t: RoundTerms, n_bootstrap: int = 200, alpha: float = 0.05, random_state: int = 0
    ) -> dict[str, Interval]:
        counts = bootstrap_counts(t.n, n_bootstrap, random_state)
        have_model = t.q_logged is not None
        return {
            name: est.estimate_interval(t, alpha=alpha, counts=counts)
            for name, est in self.estimators.items()
            if have_model or not est.needs_reward_model
        }
