"""Where tomorrow's click-through rate (or other reward per slot) of a policy may land, given its
off-policy estimate.

``evaluate_policies`` estimates each policy's value on the logged window with a percentile-bootstrap
interval. That interval is about the *estimate*: where the policy's average value over the
window's rounds lies. A policy served tomorrow realises one day's click-through rate, which also
moves with the day (who visits, which items are new, how interests drift) and carries its own
sampling noise. The next-day interval adds both to the estimate's uncertainty:

    var_next = se² + s²_day,    interval = estimate ± z · sqrt(var_next), clipped to [0, 1]
    (to [0, inf) for revenue)

- ``se = (ci_high - ci_low) / (2 z)``: the bootstrap standard error of the estimate;
- ``s²_day``: the sample variance of the *logged* daily click-through rate over the window's
  full days. It is observed rather than estimated, and the day effects it measures are shared by
  any policy shown to the same visitors on the same day. A day counts as full when it has at
  least half the impressions of the window's median day (the window's cut-off usually leaves a
  partial first day, whose rate would be mostly noise).
- With fewer than two full days there is no day-to-day spread to measure: ``s²_day`` falls back
  to one day's sampling variance ``var(reward) / n_day`` (``p(1 - p) / n_day`` for clicks) and
  the result says ``"day_effect":
  false`` — that interval leaves the day effect out and is too narrow.

The gate still decides on the estimate's own interval (``ci_low``): the day effect is common to
the policies it compares. This interval is what a user should expect to *see* tomorrow; the loop
benchmark checks it against the rate the served policy then realised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

MIN_DAY_SHARE = 0.5


@dataclass(frozen=True)
class DailySpread:
    """The logged click-through rate's spread between the window's full days."""

    days: int
    impressions_per_day: float
    variance: float
    day_effect: bool

    def as_dict(self) -> dict[str, float | int | bool]:
        return {
            "days": self.days,
            "impressions_per_day": round(self.impressions_per_day, 1),
            "sd": round(float(np.sqrt(self.variance)), 6),
            "day_effect": self.day_effect,
        }


def daily_spread(shown_at: pd.Series, reward: pd.Series) -> DailySpread:
    """The spread of the daily mean reward (click-through rate for clicks) of logged rounds."""
    if len(shown_at) == 0:
        raise ValueError("no logged rounds to measure a daily click-through rate on")
    days = pd.DataFrame({"day": pd.to_datetime(shown_at).dt.floor("D"), "reward": reward.astype(float)})
    per_day = days.groupby("day")["reward"].agg(["mean", "size"])
    full = per_day[per_day["size"] >= MIN_DAY_SHARE * per_day["size"].median()]
    n_day = float(full["size"].mean())
    if len(full) >= 2:
        return DailySpread(len(full), n_day, float(full["mean"].var(ddof=1)), True)
    return DailySpread(len(full), n_day, float(days["reward"].var(ddof=0)) / n_day, False)


def next_day_interval(
    estimate: float, ci_low: float, ci_high: float, spread: DailySpread, alpha: float = 0.05, upper: float = 1.0
) -> tuple[float, float]:
    """The (1 - alpha) interval for one day's realised mean reward of the policy, within [0, upper]
    (1 for clicks and purchases, ``math.inf`` for revenue)."""
    z = float(norm.ppf(1.0 - alpha / 2.0))
    se = (ci_high - ci_low) / (2.0 * z)
    half = z * float(np.sqrt(se**2 + spread.variance))
    return max(0.0, estimate - half), min(upper, estimate + half)
