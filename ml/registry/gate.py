"""The champion/challenger gate: one policy object, one uniform method.

A challenger is promoted only if (1) its primary metric beats the champion's by at least
``margin`` (ties promote when ``margin`` is 0: same quality on newer data), (2) no guard
regresses — catalogue coverage stays above ``min_coverage`` and does not fall more than
``max_coverage_drop`` below the champion's, the hit rate of new/cold users stays above
``min_new_user_hit_rate`` — and (3) its saved artifact passes a smoke load in a fresh process
(checked by the caller after the metric checks pass). Every check yields a readable reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NEW_USER_HIT_RATE = "new_user_hit_rate@10"
COVERAGE = "coverage@10"


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reasons: list[str] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


@dataclass(frozen=True)
class GatePolicy:
    primary: str = "ndcg@10"
    margin: float = 0.0
    min_coverage: float = 0.0
    max_coverage_drop: float | None = None
    min_new_user_hit_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.margin < 0:
            raise ValueError(f"gate margin must be >= 0, got {self.margin}")
        if not 0.0 <= self.min_coverage <= 1.0:
            raise ValueError(f"min_coverage must be in [0, 1], got {self.min_coverage}")
        if self.max_coverage_drop is not None and not 0.0 <= self.max_coverage_drop <= 1.0:
            raise ValueError(f"max_coverage_drop must be in [0, 1], got {self.max_coverage_drop}")
        if not 0.0 <= self.min_new_user_hit_rate <= 1.0:
            raise ValueError(f"min_new_user_hit_rate must be in [0, 1], got {self.min_new_user_hit_rate}")

    def decide(self, challenger: dict[str, float], champion: dict[str, float] | None) -> GateDecision:
        """Metric checks of a challenger's holdout metrics against the champion's (or none)."""
        if self.primary not in challenger:
            return GateDecision(False, [f"challenger has no {self.primary}"], {})
        c = float(challenger[self.primary])
        checks: dict[str, Any] = {self.primary: c}
        failures: list[str] = []
        passes: list[str] = []
        if champion is not None and self.primary in champion:
            bar = float(champion[self.primary]) + self.margin
            checks["bar"] = bar
            if c < bar:
                failures.append(
                    f"{self.primary} {c:.4f} does not beat champion {float(champion[self.primary]):.4f} "
                    f"+ margin {self.margin}"
                )
            else:
                passes.append(f"{self.primary} {c:.4f} >= champion {float(champion[self.primary]):.4f} + {self.margin}")
        else:
            passes.append(f"{self.primary} {c:.4f}; no champion yet")
        cov = challenger.get(COVERAGE)
        if cov is not None:
            checks[COVERAGE] = float(cov)
            if cov < self.min_coverage:
                failures.append(f"{COVERAGE} {cov:.3f} below guard {self.min_coverage:.3f}")
            if self.max_coverage_drop is not None and champion is not None and COVERAGE in champion:
                floor = float(champion[COVERAGE]) - self.max_coverage_drop
                if cov < floor:
                    failures.append(
                        f"{COVERAGE} {cov:.3f} regresses more than {self.max_coverage_drop} below champion "
                        f"{float(champion[COVERAGE]):.3f}"
                    )
        elif self.min_coverage > 0:
            failures.append(f"challenger has no {COVERAGE} for the coverage guard")
        hr = challenger.get(NEW_USER_HIT_RATE)
        if hr is not None:
            checks[NEW_USER_HIT_RATE] = float(hr)
            if hr < self.min_new_user_hit_rate:
                failures.append(f"{NEW_USER_HIT_RATE} {hr:.3f} below guard {self.min_new_user_hit_rate:.3f}")
        elif self.min_new_user_hit_rate > 0:
            passes.append(f"{NEW_USER_HIT_RATE} not measurable (no new users in the holdout)")
        return GateDecision(not failures, failures or passes, checks)
