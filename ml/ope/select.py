"""Choosing an estimator (and its hyper-parameters) by a rule fixed in advance.

The rule uses the log only, never a ground truth, and was fixed before any benchmark was run:

    MSE_hat(V) = Var_boot(V) + max(0, (V - V_DR)^2 - Var_boot(V - V_DR))

Doubly robust (DR) is the reference because it is unbiased whenever the logged propensities are
right; the squared distance of an estimator to DR, minus what the bootstrap noise of that distance
explains, estimates its squared bias. The variance comes from the same paired bootstrap.

* Hyper-parameters: switch-DR's ``tau`` and DRos's ``lambda`` are each the grid value with the
  smallest MSE_hat (grids below, fixed).
* The reported ("chosen") estimator is the one with the smallest MSE_hat among the DR family
  (DR, SNDR, switch-DR, DRos), the estimators that stay consistent whatever the reward model;
  ties go to the earlier name in ``DR_FAMILY``. The policy gate uses the same rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from ml.ope.estimators import (
    DR_FAMILY,
    DirectMethod,
    DoublyRobust,
    DRShrinkage,
    InversePropensityScoring,
    OffPolicyEstimator,
    RoundTerms,
    SelfNormalizedDR,
    SelfNormalizedIPS,
    SwitchDR,
    bootstrap_counts,
)

TAU_GRID: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, float("inf"))
LAMBDA_GRID: tuple[float, ...] = (1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0, float("inf"))


@dataclass(frozen=True)
class MSEEstimate:
    """Estimated mean squared error of one estimator on one log (reward units squared)."""

    mse: float
    variance: float
    bias2: float


def estimated_mse(
    est: OffPolicyEstimator, t: RoundTerms, counts: np.ndarray, reference: OffPolicyEstimator | None = None
) -> MSEEstimate:
    """MSE_hat of ``est`` against the unbiased ``reference`` (default DR) on shared resamples."""
    ref = reference or DoublyRobust()
    v, v_ref = est.estimate(t), ref.estimate(t)
    boot, boot_ref = est.bootstrap(t, counts), ref.bootstrap(t, counts)
    var = float(boot.var(ddof=1)) if len(boot) > 1 else 0.0
    var_diff = float((boot - boot_ref).var(ddof=1)) if len(boot) > 1 else 0.0
    bias2 = max(0.0, (v - v_ref) ** 2 - var_diff)
    return MSEEstimate(var + bias2, var, bias2)


def tune(
    factory: Callable[[float], OffPolicyEstimator], grid: Iterable[float], t: RoundTerms, counts: np.ndarray
) -> OffPolicyEstimator:
    """The grid member with the smallest MSE_hat (first one on ties)."""
    best: tuple[float, OffPolicyEstimator] | None = None
    for g in grid:
        est = factory(g)
        m = estimated_mse(est, t, counts).mse
        if best is None or m < best[0]:
            best = (m, est)
    if best is None:
        raise ValueError("empty hyper-parameter grid")
    return best[1]


def standard_estimators(
    t: RoundTerms, counts: np.ndarray | None = None, n_bootstrap: int = 200, random_state: int = 0
) -> dict[str, OffPolicyEstimator]:
    """DM, IPS, SNIPS, DR, SNDR and the tuned switch-DR and DRos for this log.

    Without a reward model (``t.q_logged is None``) only IPS and SNIPS are returned."""
    out: dict[str, OffPolicyEstimator] = {"ips": InversePropensityScoring(), "snips": SelfNormalizedIPS()}
    if t.q_logged is None:
        return out
    counts = bootstrap_counts(t.n, n_bootstrap, random_state) if counts is None else counts
    out.update({"dm": DirectMethod(), "dr": DoublyRobust(), "sndr": SelfNormalizedDR()})
    out["switch-dr"] = tune(lambda g: SwitchDR(tau=g), TAU_GRID, t, counts)
    out["dros"] = tune(lambda g: DRShrinkage(lambda_=g), LAMBDA_GRID, t, counts)
    order = ("dm", "ips", "snips", "dr", "sndr", "switch-dr", "dros")
    return {k: out[k] for k in order}


def choose(
    estimators: dict[str, OffPolicyEstimator],
    t: RoundTerms,
    counts: np.ndarray,
    candidates: Iterable[str] = DR_FAMILY,
) -> tuple[str, dict[str, MSEEstimate]]:
    """Apply the rule: the candidate with the smallest MSE_hat. Returns (name, MSE_hat per candidate)."""
    scores = {name: estimated_mse(estimators[name], t, counts) for name in candidates if name in estimators}
    if not scores:
        raise ValueError(f"none of the candidate estimators {list(candidates)} is available")
    best = min(scores, key=lambda n: scores[n].mse)
    return best, scores
