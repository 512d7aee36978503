"""Campaign reports from the warehouse: uplift in clicks and purchases per exposed user,
treatment vs the randomised holdout, over the campaign window (intention to treat)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ml.marketing.campaigns import Campaign, uplift
from ml.warehouse import Warehouse


def per_user_outcomes(wh: Warehouse, campaign: Campaign) -> pd.DataFrame:
    """One row per user exposed to recommendations (an impression) inside the window, with
    their clicks and purchases inside the window (0 when none)."""
    df = wh.query(
        "select user_id, "
        "sum(case when event_type = 'impression' then 1 else 0 end) as impressions, "
        "sum(case when event_type = 'click' then 1 else 0 end) as clicks, "
        "sum(case when event_type = 'purchase' then 1 else 0 end) as purchases "
        "from staging.stg_shop__events where event_at >= ? and event_at < ? group by user_id",
        [campaign.start, campaign.end],
    )
    return df[df["impressions"] > 0].reset_index(drop=True)


def campaign_report(campaign: Campaign, outcomes: pd.DataFrame, n_boot: int = 2000) -> dict[str, Any]:
    rows = [uplift(outcomes, campaign, m, n_boot=n_boot).as_dict() for m in ("clicks", "purchases")]
    return {
        "campaign": campaign.name,
        "window": [campaign.start.isoformat(), campaign.end.isoformat()],
        "holdout_share": campaign.holdout_share,
        "exposed_users": len(outcomes),
        "metrics": rows,
    }
