"""What a policy is rewarded for: the click, the attributed purchase, or the attributed revenue.

``marts.bandit_feedback`` carries all three outcomes of every shown slot (``clicked``,
``purchased``, ``revenue``; the attribution rule is in the mart and in its in-memory twin
``ml.explore.feedback.feedback_from_events``). Off-policy evaluation and the policy gate read
the one chosen here as ``reward`` (``evaluate_policies``' ``reward`` Param); whatever the reward,
the click-through rate stays the guard metric the gate checks (``ml.ope.gate``). The policies
themselves learn users' interests from clicks: the reward decides which policy serves.
"""

from __future__ import annotations

import math

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


def with_reward(feedback: pd.DataFrame, reward: str = DEFAULT_REWARD) -> pd.DataFrame:
    """``feedback`` with a float ``reward`` column holding the chosen outcome (missing revenue: 0)."""
    column = reward_column(reward)
    if column not in feedback:
        raise ValueError(f"feedback has no {column!r} column to use as the {reward} reward")
    values = pd.to_numeric(feedback[column], errors="coerce").fillna(0.0).to_numpy(np.float64)
    return feedback.assign(**{C.REWARD: values})
