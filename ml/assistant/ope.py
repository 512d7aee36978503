"""Off-policy estimates for the assistant's exploration rate, from its own logged answers.

The only randomness in an answer is the last slot's coin (``ml.assistant.explore``): with
probability ``share`` a candidate-interest item, else the ranking's k-th item; with no candidate
item at hand there is no coin (propensity 1). So for another share ``s`` the probability of what
was shown is known exactly: ``s`` for an exploring item, ``1 - s`` for the ranked one, 1 without
a coin. Over the last slots of the answers in ``marts.bandit_feedback`` (``policy`` =
``assistant``), the importance weight is that probability over the logged propensity, and the
estimate is the self-normalised IPS of the click-through rate of the last slot, with a 95 %
percentile-bootstrap interval over answers (``ml.ope.estimators``' SNIPS and bootstrap, as for the
slate policies). Shares the log never explored with (0 < s, logged share 0) are not identified
and are not reported. ``evaluate_policies`` writes these estimates beside the slate policies'
(policy ``assistant(share=s)``, estimator ``snips``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.explore import columns as C
from ml.ope.estimators import RoundTerms, SelfNormalizedIPS, bootstrap_counts

POLICY = "assistant"
# the exploration shares evaluate_policies and ``python -m ml assistant report`` estimate by default
SHARES: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.5)


def last_slots(feedback: pd.DataFrame) -> pd.DataFrame:
    """The last shown slot of every logged assistant answer, with a propensity."""
    fb = feedback[(feedback[C.POLICY] == POLICY) & feedback[C.HAS_PROPENSITY].astype(bool)]
    if fb.empty:
        return fb
    last = fb.groupby(C.RECOMMENDATION_ID)[C.POSITION].transform("max")
    return fb[fb[C.POSITION] == last].reset_index(drop=True)


def target_probability(rounds: pd.DataFrame, share: float) -> np.ndarray:
    """P(the shown last-slot item | exploration share ``share``) for each round."""
    exploring = rounds[C.IS_EXPLORATION].astype(bool).to_numpy()
    coin = ~((rounds[C.PROPENSITY].to_numpy(np.float64) >= 1.0) & ~exploring)  # propensity 1, ranked: no coin
    return np.where(~coin, 1.0, np.where(exploring, share, 1.0 - share))


def exploration_estimates(
    feedback: pd.DataFrame,
    shares: tuple[float, ...] = SHARES,
    n_bootstrap: int = 200,
    seed: int = 0,
) -> pd.DataFrame:
    """Per share: the last slot's estimated click-through (SNIPS) with its 95 % interval, ``n``
    rounds and ``effective_n`` (sum(w)^2 / sum(w^2)); empty without logged answers."""
    rounds = last_slots(feedback)
    cols = ["share", "estimate", "ci_low", "ci_high", "n", "effective_n"]
    if rounds.empty:
        return pd.DataFrame(columns=cols)
    clicked = rounds[C.CLICKED].to_numpy(np.float64)
    logged = rounds[C.PROPENSITY].to_numpy(np.float64)
    explored_ever = bool(rounds[C.IS_EXPLORATION].astype(bool).any())
    counts = bootstrap_counts(len(rounds), n_bootstrap, seed)
    out = []
    for share in shares:
        if share > 0 and not explored_ever:
            continue  # never explored: nothing in the log says what exploring earns
        w = target_probability(rounds, share) / logged
        if w.sum() <= 0:
            continue
        iv = SelfNormalizedIPS().estimate_interval(RoundTerms(clicked, w, np.zeros(len(w), np.int64)), counts=counts)
        out.append(
            {
                "share": share,
                "estimate": iv.estimate,
                "ci_low": iv.ci_low,
                "ci_high": iv.ci_high,
                "n": len(rounds),
                "effective_n": float(w.sum() ** 2 / max((w**2).sum(), 1e-12)),
            }
        )
    return pd.DataFrame(out, columns=cols)
