"""Where tomorrow's click-through rate (or other reward per slot) of a policy may land, given its
off-policy estimate.

``evaluate_policies`` estimates each policy's value on the logged window with a percentile-bootstrap
interval. That interval is about the *estimate*: where the policy's average value over the
window's rounds lies. A policy served tomorrow realises one day's click-through rate, which also
moves with the day (who visits, which items are new, how interests drift and tire) and carries its
own sampling noise. The next-day forecast moves the estimate by the logged trend and adds both to
its uncertainty:

    centre = estimate + shift,    var_next = se² + s²_day,
    interval = centre ± z · sqrt(var_next), clipped to [0, 1] (to [0, inf) for revenue)

- ``se = (ci_high - ci_low) / (2 z)``: the bootstrap standard error of the estimate;
- the *logged* daily click-through rate over the window's full days (a day counts as full when
  it has at least half the impressions of the window's median day: the window's cut-off usually
  leaves a partial first day, whose rate would be mostly noise) is observed rather than
  estimated, and its day effects are shared by any policy shown to the same visitors on the same
  day. With at least :data:`MIN_TREND_DAYS` full days a straight line is fitted to it (least
  squares over the days): ``shift`` is the line's change from the estimate's centre in time
  (the window's rounds' mean day) to tomorrow, and ``s²_day`` the line's prediction variance for
  tomorrow, ``s²_res · (1 + 1/m + (t_next - t̄)² / Σ(t - t̄)²)`` (``s²_res``: residual variance,
  ``m`` days). An evaluation that averages a week lags a rate that rises or falls; the line
  carries it to the day the policy will be served.
- With two or three full days ``shift`` is 0 and ``s²_day`` their sample variance; with fewer
  than two there is no day-to-day spread to measure: ``s²_day`` falls back to one day's sampling
  variance ``var(reward) / n_day`` (``p(1 - p) / n_day`` for clicks) and the result says
  ``"day_effect": false`` — that interval leaves the day effect out and is too narrow.

The gate still decides on the estimate's own interval (``ci_low``): the day effect is common to
the policies it compares. This forecast is what a user should expect to *see* tomorrow; the loop
benchmark checks it against the rate the served policy then realised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

MIN_DAY_SHARE = 0.5
# full days needed to fit the daily rate's trend (two residual degrees of freedom)
MIN_TREND_DAYS = 4


@dataclass(frozen=True)
class DailySpread:
    """The logged click-through rate's spread between the window's full days (``variance``: of
    tomorrow's rate around the forecast), its trend per day and the ``shift`` from the window's
    average to tomorrow (both 0 with fewer than :data:`MIN_TREND_DAYS` full days)."""

    days: int
    impressions_per_day: float
    variance: float
    day_effect: bool
    trend: float = 0.0
    shift: float = 0.0

    def forecast(self, estimate: float) -> float:
        """Tomorrow's expected value of a policy whose window estimate is ``estimate``."""
        return estimate + self.shift

    def as_dict(self) -> dict[str, float | int | bool]:
        return {
            "days": self.days,
            "impressions_per_day": round(self.impressions_per_day, 1),
            "sd": round(float(np.sqrt(self.variance)), 6),
            "day_effect": self.day_effect,
            "trend_per_day": round(self.trend, 6),
            "shift": round(self.shift, 6),
        }


def daily_spread(shown_at: pd.Series, reward: pd.Series) -> DailySpread:
    """The spread (and, with enough full days, the trend) of the daily mean reward
    (click-through rate for clicks) of logged rounds."""
    if len(shown_at) == 0:
        raise ValueError("no logged rounds to measure a daily click-through rate on")
    days = pd.DataFrame({"day": pd.to_datetime(shown_at).dt.floor("D"), "reward": reward.astype(float)})
    per_day = days.groupby("day")["reward"].agg(["mean", "size"])
    per_day["t"] = (per_day.index - per_day.index.min()).days.astype(float)
    full = per_day[per_day["size"] >= MIN_DAY_SHARE * per_day["size"].median()]
    n_day = float(full["size"].mean())
    if len(full) >= MIN_TREND_DAYS:
        t, y = full["t"].to_numpy(), full["mean"].to_numpy()
        slope, intercept = np.polyfit(t, y, 1)
        residual = y - (intercept + slope * t)
        t_next = float(t.max()) + 1.0
        leverage = 1.0 + 1.0 / len(t) + (t_next - t.mean()) ** 2 / float(((t - t.mean()) ** 2).sum())
        variance = float(residual @ residual) / (len(t) - 2) * leverage
        centre = float((per_day["t"] * per_day["size"]).sum() / per_day["size"].sum())
        return DailySpread(len(full), n_day, variance, True, float(slope), float(slope) * (t_next - centre))
    if len(full) >= 2:
        return DailySpread(len(full), n_day, float(full["mean"].var(ddof=1)), True)
    return DailySpread(len(full), n_day, float(days["reward"].var(ddof=0)) / n_day, False)


def next_day_interval(
    estimate: float, ci_low: float, ci_high: float, spread: DailySpread, alpha: float = 0.05, upper: float = 1.0
) -> tuple[float, float]:
    """The (1 - alpha) interval for one day's realised mean reward of the policy (tomorrow's),
    within [0, upper] (1 for clicks and purchases, ``math.inf`` for revenue)."""
    z = float(norm.ppf(1.0 - alpha / 2.0))
    se = (ci_high - ci_low) / (2.0 * z)
    half = z * float(np.sqrt(se**2 + spread.variance))
    centre = spread.forecast(estimate)
    return max(0.0, centre - half), min(upper, centre + half)
