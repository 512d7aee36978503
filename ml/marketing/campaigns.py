"""Campaign windows: dated boosts of tags or items, capped at a share of slots, evaluated
honestly with a randomised holdout of users who see no boost.

Holdout membership is a deterministic hash of (campaign, user): the same user is in the same
arm on every publish run, and the report can recompute arms without extra state.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SPEC_DIR = Path(__file__).parent / "campaigns"
TREATMENT, HOLDOUT, NONE = "treatment", "holdout", "none"


@dataclass
class Campaign:
    name: str
    start: datetime
    end: datetime
    boost_tags: list[str] = field(default_factory=list)
    boost_items: list[str] = field(default_factory=list)
    boost: float = 1.0  # boosted score = score * (1 + boost)
    max_share: float = 0.3  # at most this share of each user's k slots
    holdout_share: float = 0.1
    description: str = ""

    def __post_init__(self) -> None:
        self.start = _naive_utc(self.start)
        self.end = _naive_utc(self.end)
        if self.end <= self.start:
            raise ValueError(f"campaign {self.name!r}: end {self.end} must be after start {self.start}")
        if not self.boost_tags and not self.boost_items:
            raise ValueError(f"campaign {self.name!r}: boost at least one tag or item")
        if not 0 < self.max_share <= 1:
            raise ValueError(f"campaign {self.name!r}: max_share must be in (0, 1]")
        if not 0 <= self.holdout_share < 1:
            raise ValueError(f"campaign {self.name!r}: holdout_share must be in [0, 1)")

    def active(self, at: datetime) -> bool:
        return bool(self.start <= _naive_utc(at) < self.end)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Campaign:
        return cls(**d)


def _naive_utc(value: Any) -> datetime:
    """A timestamp as naive UTC (the warehouse's convention)."""
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.to_pydatetime()


def load_campaigns(folder: Path = SPEC_DIR) -> dict[str, Campaign]:
    import yaml

    out: dict[str, Campaign] = {}
    for path in sorted(folder.glob("*.yml")):
        try:
            c = Campaign.from_dict(yaml.safe_load(path.read_text()))
        except (TypeError, ValueError, yaml.YAMLError) as exc:
            raise ValueError(f"{path}: invalid campaign: {exc}") from exc
        out[c.name] = c
    return out


def arm(user_ids: pd.Series | np.ndarray, campaign: Campaign) -> np.ndarray:
    """'holdout' for a uniform pseudo-random ``holdout_share`` of users, else 'treatment'."""
    u = np.array([int(hashlib.sha256(f"{campaign.name}|{x}".encode()).hexdigest()[:12], 16) / 16**12 for x in user_ids])
    return np.where(u < campaign.holdout_share, HOLDOUT, TREATMENT)


def apply_campaign(
    candidates: pd.DataFrame, item_tags: pd.DataFrame, campaign: Campaign, at: datetime, k: int
) -> pd.DataFrame:
    """Re-rank each user's candidates (user_id, item_id, score; more than k per user is best)
    into a top-k. Outside the window nothing changes (arm 'none'); holdout users get the plain
    ranking; treatment users get boosted items' scores raised, but boosted items take at most
    ``floor(max_share * k)`` slots. Returns user_id, item_id, score, rank, campaign_arm,
    campaign_boosted."""
    c = candidates.copy()
    tagged = set(item_tags.loc[item_tags["tag"].isin(campaign.boost_tags), "item_id"]) | set(campaign.boost_items)
    c["campaign_boosted"] = c["item_id"].isin(tagged)
    if not campaign.active(at):
        c["campaign_arm"] = NONE
        c["campaign_boosted"] = False
        return _top(c, k, cap=None)
    users = c["user_id"].drop_duplicates()
    arms = pd.Series(arm(users.to_numpy(), campaign), index=users.to_numpy())
    c["campaign_arm"] = c["user_id"].map(arms)
    treat = c["campaign_arm"] == TREATMENT
    c.loc[~treat, "campaign_boosted"] = False
    c.loc[treat & c["campaign_boosted"], "score"] *= 1.0 + campaign.boost
    return _top(c, k, cap=math.floor(campaign.max_share * k))


def _top(c: pd.DataFrame, k: int, cap: int | None) -> pd.DataFrame:
    c = c.sort_values(["user_id", "score", "item_id"], ascending=[True, False, True], kind="stable")
    if cap is not None:
        nth_boosted = c.groupby("user_id")["campaign_boosted"].cumsum()
        c = c[~c["campaign_boosted"] | (nth_boosted <= cap)]
    c = c.groupby("user_id", sort=False).head(k).copy()
    c["rank"] = c.groupby("user_id").cumcount() + 1
    return c.reset_index(drop=True)


@dataclass
class UpliftReport:
    campaign: str
    metric: str
    treatment_users: int
    holdout_users: int
    treatment_mean: float
    holdout_mean: float
    uplift: float
    ci_low: float
    ci_high: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def uplift(per_user: pd.DataFrame, campaign: Campaign, metric: str, n_boot: int = 2000, seed: int = 0) -> UpliftReport:
    """Difference in mean ``metric`` per user (treatment - holdout) with a 95% bootstrap CI.
    ``per_user`` has one row per exposed user: user_id and the metric columns (0 when none)."""
    arms = arm(per_user["user_id"].to_numpy(), campaign)
    t = per_user.loc[arms == TREATMENT, metric].to_numpy(float)
    h = per_user.loc[arms == HOLDOUT, metric].to_numpy(float)
    if len(t) == 0 or len(h) == 0:
        raise ValueError(f"campaign {campaign.name!r}: need users in both arms (treatment {len(t)}, holdout {len(h)})")
    rng = np.random.default_rng(seed)
    bt = rng.choice(t, (n_boot, len(t))).mean(axis=1)
    bh = rng.choice(h, (n_boot, len(h))).mean(axis=1)
    diff = bt - bh
    lo, hi = np.quantile(diff, [0.025, 0.975])
    return UpliftReport(
        campaign.name,
        metric,
        len(t),
        len(h),
        float(t.mean()),
        float(h.mean()),
        float(t.mean() - h.mean()),
        float(lo),
        float(hi),
    )
