"""The policy gate's rule: a lower bound must beat the serving policy's estimate."""

from __future__ import annotations

import pytest

from ml.ope.gate import decide, policy_label

pytestmark = pytest.mark.unit


def _est(policy: str, estimate: float, lo: float, hi: float, ctr: tuple | None = None, **params) -> dict:
    """An evaluated policy; its click-through is the estimate itself unless ``ctr`` (est, lo, hi) is given."""
    c = ctr or (estimate, lo, hi)
    return {
        "policy": policy,
        "params": params,
        "estimator": "dros",
        "estimate": estimate,
        "ci_low": lo,
        "ci_high": hi,
        "ctr": c[0],
        "ctr_low": c[1],
        "ctr_high": c[2],
    }


def test_candidate_is_promoted_only_when_its_lower_bound_beats_the_current_estimate():
    current = _est("greedy", 0.060, 0.055, 0.065)
    better = _est("thompson", 0.080, 0.066, 0.094)
    promising = _est("ucb1", 0.090, 0.050, 0.130, c=0.1)  # higher estimate, but too uncertain
    d = decide(current, [promising, better])
    assert d.promoted and d.challenger is better
    assert "thompson" in d.reason and "0.06600" in d.reason
    assert not decide(current, [promising]).promoted
    assert not decide(current, [better], margin=0.01).promoted  # 0.066 < 0.060 + 0.01


def test_the_current_policy_is_not_its_own_challenger():
    current = _est("epsilon_greedy", 0.06, 0.05, 0.07, epsilon=0.1)
    same = _est("epsilon_greedy", 0.09, 0.08, 0.10, epsilon=0.1)
    d = decide(current, [same])
    assert not d.promoted and d.challenger is None
    other = _est("epsilon_greedy", 0.09, 0.08, 0.10, epsilon=0.05)
    assert decide(current, [same, other]).challenger is other


def test_a_candidate_earning_more_revenue_is_held_back_when_its_click_through_clearly_falls():
    # revenue per slot; click-through as the guard
    current = _est("greedy", 0.50, 0.45, 0.55, ctr=(0.060, 0.055, 0.065))
    pricier = _est("thompson", 0.80, 0.70, 0.90, ctr=(0.040, 0.035, 0.045))  # CTR interval below 0.060
    d = decide(current, [pricier])
    assert not d.promoted and d.challenger is None
    assert "click-through guard" in d.reason and "thompson 0.04500" in d.reason
    # a tolerance of 0.02 clicks per slot lets it through
    assert decide(current, [pricier], ctr_guard=0.02).promoted
    # a candidate whose CTR may hold (interval reaches the current CTR) is eligible; the other is named
    steady = _est("ucb1", 0.70, 0.60, 0.80, ctr=(0.055, 0.045, 0.062), c=0.1)
    d = decide(current, [pricier, steady])
    assert d.promoted and d.challenger is steady and "held back" in d.reason and "thompson" in d.reason


def test_policy_labels_are_stable():
    assert policy_label("greedy", {}) == "greedy"
    assert policy_label("x", {"b": 1, "a": {"z": 1, "y": 2}}) == 'x(a={"y":2,"z":1},b=1)'
