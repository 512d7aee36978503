"""The next-day interval: the estimate's own uncertainty plus the logged day-to-day spread."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.ope.forecast import daily_spread, next_day_interval

pytestmark = pytest.mark.unit


def _log(days: list[tuple[str, int, int]]) -> tuple[pd.Series, pd.Series]:
    """Rounds of (day, impressions, clicks), each day's rounds spread over its hours."""
    shown, clicked = [], []
    for day, n, clicks in days:
        start = pd.Timestamp(day)
        shown += [start + pd.Timedelta(seconds=int(s)) for s in np.linspace(0, 86_000, n)]
        clicked += [1] * clicks + [0] * (n - clicks)
    return pd.Series(shown), pd.Series(clicked)


def test_the_spread_is_the_variance_of_the_full_days_ctr():
    shown, clicked = _log([("2026-11-01", 1000, 80), ("2026-11-02", 1000, 100), ("2026-11-03", 1000, 90)])
    spread = daily_spread(shown, clicked)
    assert spread.days == 3 and spread.day_effect
    assert spread.variance == pytest.approx(np.var([0.08, 0.10, 0.09], ddof=1))
    assert spread.impressions_per_day == pytest.approx(1000)


def test_a_partial_first_day_is_left_out_of_the_spread():
    # the window's cut-off leaves 40 rounds of the first day, with an extreme rate
    shown, clicked = _log([("2026-11-01", 40, 30), ("2026-11-02", 1000, 80), ("2026-11-03", 1000, 100)])
    spread = daily_spread(shown, clicked)
    assert spread.days == 2
    assert spread.variance == pytest.approx(np.var([0.08, 0.10], ddof=1))


def test_one_day_falls_back_to_the_binomial_variance_and_says_the_day_effect_is_missing():
    shown, clicked = _log([("2026-11-01", 2000, 100)])
    spread = daily_spread(shown, clicked)
    assert not spread.day_effect and spread.days == 1
    assert spread.variance == pytest.approx(0.05 * 0.95 / 2000)
    assert spread.as_dict()["day_effect"] is False


def test_the_next_day_interval_widens_the_estimate_interval_by_the_day_spread():
    shown, clicked = _log([("2026-11-01", 1000, 80), ("2026-11-02", 1000, 100)])
    spread = daily_spread(shown, clicked)
    lo, hi = next_day_interval(0.09, 0.085, 0.095, spread)
    se = 0.005 / 1.959964
    half = 1.959964 * np.sqrt(se**2 + spread.variance)
    assert (lo, hi) == pytest.approx((0.09 - half, 0.09 + half))
    assert lo < 0.085 and hi > 0.095
    # without a day-to-day spread the interval is the estimate's own
    still = next_day_interval(0.09, 0.085, 0.095, type(spread)(2, 1000.0, 0.0, True))
    assert still == pytest.approx((0.085, 0.095))


def test_the_interval_stays_a_rate():
    shown, clicked = _log([("2026-11-01", 100, 1), ("2026-11-02", 100, 30)])
    lo, hi = next_day_interval(0.01, 0.0, 0.03, daily_spread(shown, clicked))
    assert lo == 0.0 and 0.01 < hi <= 1.0


def test_no_rounds_is_a_clear_error():
    with pytest.raises(ValueError, match="no logged rounds"):
        daily_spread(pd.Series([], dtype="datetime64[ns]"), pd.Series([], dtype=int))


def test_revenue_falls_back_to_its_sampling_variance_and_is_not_cut_at_one():
    rng = np.random.default_rng(1)
    revenue = pd.Series(np.where(rng.random(2000) < 0.01, 45.0, 0.0))
    spread = daily_spread(pd.Series([pd.Timestamp("2026-11-01")] * 2000), revenue)
    assert spread.variance == pytest.approx(revenue.var(ddof=0) / 2000)
    lo, hi = next_day_interval(2.0, 1.8, 2.2, spread, upper=float("inf"))
    assert 0 <= lo < 1.8 and hi > 2.2
    assert next_day_interval(2.0, 1.8, 2.2, spread)[1] == 1.0  # the default bound is a rate's


def test_a_falling_rate_moves_the_forecast_down_by_its_trend():
    # a partial first day, then five full days whose rate falls by 0.005 a day (plus noise)
    days = [
        ("2026-11-01", 300, 30),
        *[(f"2026-11-0{d}", 2000, c) for d, c in zip(range(2, 7), (200, 192, 178, 171, 160), strict=True)],
    ]
    shown, clicked = _log(days)
    spread = daily_spread(shown, clicked)
    assert spread.days == 5 and spread.day_effect
    rates = np.array([200, 192, 178, 171, 160]) / 2000
    t = np.arange(1.0, 6.0)  # day indices from the window's first (partial) day
    slope, intercept = np.polyfit(t, rates, 1)
    assert spread.trend == pytest.approx(slope) and slope < 0
    # the estimate averages the window's rounds (centred near day 3.2); tomorrow is day 6
    centre = (0 * 300 + t @ np.full(5, 2000)) / 10_300
    assert spread.shift == pytest.approx(slope * (6.0 - centre))
    residual = rates - (intercept + slope * t)
    leverage = 1 + 1 / 5 + (6.0 - t.mean()) ** 2 / ((t - t.mean()) ** 2).sum()
    assert spread.variance == pytest.approx(residual @ residual / 3 * leverage)
    estimate = float(np.average(np.r_[0.1, rates], weights=[300, *[2000] * 5]))
    lo, hi = next_day_interval(estimate, estimate - 0.004, estimate + 0.004, spread)
    tomorrow = intercept + slope * 6.0
    assert lo < tomorrow < hi and (lo + hi) / 2 == pytest.approx(estimate + spread.shift)
    assert (lo + hi) / 2 < estimate  # the lagging weekly average is carried down to tomorrow
    assert spread.as_dict()["trend_per_day"] == pytest.approx(slope, abs=1e-6)


def test_fewer_than_four_full_days_fit_no_trend():
    shown, clicked = _log([("2026-11-01", 1000, 100), ("2026-11-02", 1000, 90), ("2026-11-03", 1000, 80)])
    spread = daily_spread(shown, clicked)
    assert spread.days == 3 and spread.trend == 0.0 and spread.shift == 0.0
    assert spread.variance == pytest.approx(np.var([0.10, 0.09, 0.08], ddof=1))
