"""What a policy is rewarded for: the click, the attributed purchase, or the attributed revenue.

``marts.bandit_feedback`` carries all three outcomes of every shown slot (``clicked``,
``purchased``, ``revenue``; the attribution rule is in the mart and in its in-memory twin
``ml.explore.feedback.feedback_from_events``). Off-policy evaluation and the policy gate read
the one chosen here as ``reward`` (``evaluate_policies``' ``reward`` Param); whatever the reward,
the click-through rate stays the guard metric the gate checks (``ml.ope.gate``).

The policies learn from the same reward (the ``policy_reward`` setting, ``click`` by default):
their arms' successes (``ml.explore.feedback.FeedbackStats``) and the linear policies' fit read
:func:`with_reward` with a ``scale``, which keeps every reward in [0, 1] as a Beta posterior
needs: a click or a purchase is 0 or 1; revenue is divided by the catalogue's 99th price
percentile (:func:`revenue_scale`) and capped at 1, so an arm whose items sell at higher prices
earns more per sale. Slot examination (position bias) is always estimated from clicks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml.explore import columns as C
from ml.explore.defaults import DEFAULT_REWARD, POLICY_REWARDS

# reward name -> the feedback column it reads
REWARD_COLUMNS: dict[str, str] = {"click": C.CLICKED, "purchase": C.PURCHASED, "revenue": C.REVENUE}


def reward_column(reward: str) -> str:
    """The feedback column of ``reward``; an unknown name raises naming the allowed ones."""
    if reward not in REWARD_COLUMNS:
        raise ValueError(f"unknown reward {reward!r}; choose one of {', '.join(POLICY_REWARDS)}")
    return REWARD_COLUMNS[reward]


def upper_bound(reward: str) -> float:
    """The largest reward one shown slot can earn: 1 for a click or a purchase, unbounded revenue."""
    return math.inf if reward_column(reward) == C.REVENUE else 1.0


def with_reward(feedback: pd.DataFrame, reward: str = DEFAULT_REWARD, scale: float | None = None) -> pd.DataFrame:
    """``feedback`` with a float ``reward`` column holding the chosen outcome (missing revenue: 0);
    with ``scale`` (what policies learn from), revenue divided by it and capped at 1."""
    column = reward_column(reward)
    if column not in feedback:
        raise ValueError(f"feedback has no {column!r} column to use as the {reward} reward")
    values = pd.to_numeric(feedback[column], errors="coerce").fillna(0.0).to_numpy(np.float64)
    if scale is not None and column == C.REVENUE:
        values = np.clip(values / scale, 0.0, 1.0)
    return feedback.assign(**{C.REWARD: values})


def revenue_scale(prices: Any) -> float:
    """The revenue that counts as a whole success for a policy: the 99th percentile of the
    catalogue's positive prices (1 when there is none)."""
    p = pd.to_numeric(pd.Series(np.asarray(prices, dtype=object)), errors="coerce").to_numpy(np.float64)
    p = p[np.isfinite(p) & (p > 0)]
    return float(np.quantile(p, 0.99)) if len(p) else 1.0


@dataclass(frozen=True)
class Learning:
    """What the policies learn from: the ``reward`` and, for revenue, its ``scale``."""

    reward: str = DEFAULT_REWARD
    scale: float = 1.0

    def __post_init__(self) -> None:
        reward_column(self.reward)
        if not self.scale > 0:
            raise ValueError(f"the revenue scale must be > 0, got {self.scale}")

    @classmethod
    def of(cls, reward: str, prices: Callable[[], Any]) -> Learning:
        """Learning from ``reward``; ``prices()`` gives the catalogue's prices, asked for only
        when the reward is revenue (:func:`revenue_scale`)."""
        return cls(reward, revenue_scale(prices()) if reward_column(reward) == C.REVENUE else 1.0)

    def apply(self, feedback: pd.DataFrame) -> pd.DataFrame:
        """``feedback`` with the ``reward`` column the policies learn from (in [0, 1])."""
        return with_reward(feedback, self.reward, self.scale)
