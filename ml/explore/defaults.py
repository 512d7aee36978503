"""Import-light defaults of the explore/exploit layer (DAG files read these; no numpy here)."""

from __future__ import annotations

from typing import Any

POLICY_FAMILY = "policy"
# the policy that serves while the registry has no policy champion: the champion recommender's
# ranking regrouped by interest tag, no exploration (propensity 1)
DEFAULT_POLICY = "greedy"
# share of the k slots reserved for exploration by the slot allocator, per user segment
DEFAULT_EXPLORATION_BUDGET: dict[str, float] = {"default": 0.2, "new": 0.1}
# users with fewer sessions than this get proportionally fewer exploration slots
DEFAULT_MIN_SESSIONS = 3
# Monte Carlo slates per user for propensities (standard error <= 0.5 / sqrt(draws))
DEFAULT_PROPENSITY_DRAWS = 256
DEFAULT_POLICY_CANDIDATES: list[dict[str, Any]] = [
    {"policy": "greedy", "params": {}},
    {"policy": "epsilon_greedy", "params": {"epsilon": 0.1}},
    {"policy": "ucb1", "params": {"c": 0.1}},
    {"policy": "thompson", "params": {}},
    {"policy": "linucb", "params": {"alpha": 0.1, "l2": 50.0}},
    {"policy": "lin_thompson", "params": {"v": 0.1, "l2": 50.0}},
    {
        "policy": "slot_allocator",
        "params": {"budget": DEFAULT_EXPLORATION_BUDGET, "min_sessions": DEFAULT_MIN_SESSIONS},
    },
]
# what off-policy evaluation and the policy gate measure a policy by (ml.explore.reward): the
# click, the attributed purchase, or the attributed revenue (click-through stays a guard metric)
POLICY_REWARDS = ("click", "purchase", "revenue")
DEFAULT_REWARD = "click"
