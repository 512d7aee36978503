"""The loop benchmark's bookkeeping: arm totals, the OPE calibration check and the plot, on
day reports shaped like the living shop's (``ml.simulate.living``)."""

from __future__ import annotations

import pytest

from ml.bench.loop import arm_summary, ope_calibration, plot, served_estimate

pytestmark = pytest.mark.unit


def _day(day: int, label: str, impressions: int, clicks: int, gate: dict) -> dict:
    return {
        "day": day,
        "date": f"2026-11-{day:02d}",
        "policy": label,
        "policy_label": label,
        "impressions": impressions,
        "clicks": clicks,
        "ctr": clicks / impressions,
        "ctr_exploration": 0.0,
        "ctr_exploitation": clicks / impressions,
        "purchases": clicks // 5,
        "interests_discovered": day / 10,
        "policy_gate": gate,
    }


KEYS = ("estimate", "ci_low", "ci_high", "next_low", "next_high")


def _gate(current: tuple, candidates: dict, champion: str, promoted: bool = False) -> dict:
    label, *values = current
    return {
        "champion": champion,
        "promoted": promoted,
        "details": {
            "current": {"label": label, "estimator": "dr", **dict(zip(KEYS, values, strict=True))},
            "candidates": {k: {"estimator": "sndr", **dict(zip(KEYS, v, strict=True))} for k, v in candidates.items()},
        },
    }


ROWS = [
    {"day": 0, "date": "2026-10-30", "runs": {}},
    # day 1 serves greedy; its evaluation says ucb1 ~0.05 [0.045, 0.052], next day [0.04, 0.06],
    # and promotes it
    _day(
        1,
        "greedy",
        1000,
        40,
        _gate(("greedy", 0.04, 0.03, 0.05, 0.02, 0.06), {"ucb1": [0.05, 0.045, 0.052, 0.04, 0.06]}, "ucb1", True),
    ),
    # day 2 serves ucb1 and realises 0.055: inside the next-day interval, outside the estimate's;
    # relative error 0.005/0.055
    _day(
        2,
        "ucb1",
        1000,
        55,
        _gate(("ucb1", 0.07, 0.065, 0.08, 0.06, 0.085), {"greedy": [0.04, 0.03, 0.05, 0.02, 0.06]}, "ucb1"),
    ),
    # day 3 serves ucb1 and realises 0.05: outside both [0.065, 0.08] and [0.06, 0.085]
    _day(3, "ucb1", 1000, 50, _gate(("ucb1", 0.05, 0.04, 0.06, 0.03, 0.07), {}, "ucb1")),
]


def test_an_arm_adds_up_its_days_and_keeps_the_last_discovery_share():
    arm = arm_summary(ROWS)
    assert arm["cumulative_clicks"] == 145 and arm["cumulative_purchases"] == 8 + 11 + 10
    assert arm["interests_discovered"] == pytest.approx(0.3)
    assert [d["day"] for d in arm["daily"]] == [1, 2, 3]
    assert arm["daily"][0]["promoted"] and arm["daily"][0]["policy_champion_after"] == "ucb1"


def test_calibration_compares_each_days_estimate_with_the_next_days_ctr_of_the_policy_served():
    cal = ope_calibration(ROWS)
    assert cal["days"] == 2 and cal["covered"] == 1 and cal["covered_by_estimate_interval"] == 0
    first, second = cal["checks"]
    assert first["policy"] == "ucb1" and first["estimator"] == "sndr" and first["covered"]
    assert not first["covered_by_estimate_interval"]
    assert first["relative_error"] == pytest.approx(abs(0.05 - 0.055) / 0.055)
    assert not second["covered"] and second["relative_error"] == pytest.approx(0.4)
    assert cal["mean_relative_error"] == pytest.approx((abs(0.05 - 0.055) / 0.055 + 0.4) / 2, abs=1e-4)


def test_a_policy_the_evaluation_did_not_see_is_left_out():
    assert served_estimate(ROWS[1]["policy_gate"], "thompson") is None
    assert served_estimate({}, "greedy") is None


def test_the_plot_is_a_png(tmp_path):
    path = plot({"greedy": arm_summary(ROWS), "gated": arm_summary(ROWS)}, tmp_path / "loop.png")
    assert path.read_bytes().startswith(b"\x89PNG")
