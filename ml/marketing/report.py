"""Campaign reports from the warehouse: per exposed user, clicks, purchases and revenue in the
campaign window, treatment vs the randomised holdout (intention to treat), and the return on
the campaign's ``spend``.

Revenue is ``price * quantity`` (quantity 1 when missing) of the user's purchase events inside
the window. The campaign's incremental revenue is its revenue uplift per user times the treated
users; ``roas`` = incremental revenue / spend, its 95 % interval the uplift interval's bounds
scaled the same way (None when the spec gives no spend). With more than one marketing copy
variant, each variant's treated users (``campaigns.copy_variant``) are also compared with the
whole holdout, metric by metric (rows with ``copy_variant`` set; the spend is the campaign's, so
they carry no ROAS). ``write_reports`` keeps one row per (run, campaign, metric, variant) in
``ml.campaign_reports``, which the Interestflow page shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from ml.marketing.campaigns import HOLDOUT, TREATMENT, Campaign, arm, copy_variant
from ml.warehouse import Warehouse

REPORTS = "ml.campaign_reports"
METRICS = ("clicks", "purchases", "revenue")
# an uplift row (``UpliftReport``) as the reports print and store it, and what a revenue row adds
UPLIFT_COLUMNS = (
    "metric",
    "treatment_users",
    "holdout_users",
    "treatment_mean",
    "holdout_mean",
    "uplift",
    "ci_low",
    "ci_high",
)
RETURN_COLUMNS = ("incremental", "roas", "roas_low", "roas_high")
REPORT_COLUMNS = [
    "reported_at",
    "run_id",
    "campaign",
    "window_start",
    "window_end",
    *UPLIFT_COLUMNS,
    "spend",
    *RETURN_COLUMNS,
    "copy_variant",
]


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


def per_user_outcomes(wh: Warehouse, campaign: Campaign) -> pd.DataFrame:
    """One row per user exposed to recommendations (an impression) inside the window, with
    their clicks, purchases and revenue inside the window (0 when none)."""
    df = wh.query(
        "select user_id, "
        "sum(case when event_type = 'impression' then 1 else 0 end) as impressions, "
        "sum(case when event_type = 'click' then 1 else 0 end) as clicks, "
        "sum(case when event_type = 'purchase' then 1 else 0 end) as purchases, "
        "sum(case when event_type = 'purchase' then coalesce(price, 0) * coalesce(quantity, 1) else 0 end) "
        "as revenue "
        "from staging.stg_shop__events where event_at >= ? and event_at < ? group by user_id",
        [campaign.start, campaign.end],
    )
    df["revenue"] = df["revenue"].astype(float)
    return df[df["impressions"] > 0].reset_index(drop=True)


def campaign_report(campaign: Campaign, outcomes: pd.DataFrame, n_boot: int = 2000) -> dict[str, Any]:
    """Uplift per exposed user of each metric of ``outcomes`` (clicks, purchases and, where the
    outcomes carry it, revenue) with its 95 % interval; the revenue row also carries the
    incremental revenue and, with a spend, the ROAS and its interval."""
    rows = []
    for metric in (m for m in METRICS if m in outcomes.columns):
        row = uplift(outcomes, campaign, metric, n_boot=n_boot).as_dict()
        if metric == "revenue":
            row.update(return_on_spend(row, campaign.spend))
        rows.append(row)
    return {
        "campaign": campaign.name,
        "window": [campaign.start.isoformat(), campaign.end.isoformat()],
        "holdout_share": campaign.holdout_share,
        "spend": campaign.spend,
        "exposed_users": len(outcomes),
        "metrics": rows,
        "variants": variant_rows(campaign, outcomes, n_boot) if campaign.copy_variants > 1 else [],
    }


def variant_rows(campaign: Campaign, outcomes: pd.DataFrame, n_boot: int = 2000) -> list[dict[str, Any]]:
    """Per copy variant and metric, its treated users against the whole holdout (a variant
    without treated users yet is left out)."""
    users = outcomes["user_id"].to_numpy()
    arms, variants = arm(users, campaign), copy_variant(users, campaign)
    rows = []
    for v in range(campaign.copy_variants):
        mine = outcomes[(arms == HOLDOUT) | ((arms == TREATMENT) & (variants == v))]
        if not ((arms == TREATMENT) & (variants == v)).any():
            continue
        for metric in (m for m in METRICS if m in outcomes.columns):
            rows.append(uplift(mine, campaign, metric, n_boot=n_boot).as_dict() | {"copy_variant": v})
    return rows


def return_on_spend(revenue_uplift: dict[str, Any], spend: float | None) -> dict[str, float | None]:
    """Incremental revenue (uplift per user x treated users) and, with a spend, the ROAS with
    its interval."""
    treated = revenue_uplift["treatment_users"]
    out: dict[str, float | None] = {"incremental": revenue_uplift["uplift"] * treated}
    for name, key in (("roas", "uplift"), ("roas_low", "ci_low"), ("roas_high", "ci_high")):
        out[name] = revenue_uplift[key] * treated / spend if spend else None
    return out


def report_rows(report: dict[str, Any], run_id: str, reported_at: datetime | None = None) -> pd.DataFrame:
    """The rows of one campaign report for ``ml.campaign_reports``: one per metric."""
    start, end = (pd.Timestamp(t) for t in report["window"])
    per_run = {
        "reported_at": (reported_at or datetime.now(UTC)).replace(tzinfo=None),
        "run_id": run_id,
        "window_start": start,
        "window_end": end,
        "spend": report["spend"],
    }
    # (the metric rows lack incremental and ROAS but on revenue: None there)
    rows = [*report["metrics"], *report.get("variants", [])]
    df = pd.DataFrame([per_run | {k: m.get(k) for k in REPORT_COLUMNS if k not in per_run} for m in rows])
    for col in ("spend", "incremental", "roas", "roas_low", "roas_high"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    df["copy_variant"] = pd.to_numeric(df["copy_variant"], errors="coerce").astype("Int64")
    return df[REPORT_COLUMNS]


def write_reports(wh: Warehouse, rows: pd.DataFrame) -> None:
    """Replace the (run, campaign) rows of ``ml.campaign_reports`` with ``rows`` in one transaction
    (a table written before copy variants gains the ``copy_variant`` column, empty on old rows)."""
    ddl = (
        f"create table if not exists {REPORTS} (reported_at timestamp, run_id varchar, campaign varchar, "
        "window_start timestamp, window_end timestamp, metric varchar, treatment_users bigint, "
        "holdout_users bigint, treatment_mean double precision, holdout_mean double precision, "
        "uplift double precision, ci_low double precision, ci_high double precision, spend double precision, "
        "incremental double precision, roas double precision, roas_low double precision, roas_high double precision, "
        "copy_variant integer)"
    )
    with wh.connect() as con:
        wh.begin(con)
        wh.ensure_schemas(con)  # (under the DDL lock on PostgreSQL when a schema is missing)
        wh.execute(con, ddl)
        wh.execute(con, f"alter table {REPORTS} add column if not exists copy_variant integer")  # older tables
        for run_id, campaign in rows[["run_id", "campaign"]].drop_duplicates().itertuples(index=False):
            wh.execute(con, f"delete from {REPORTS} where run_id = ? and campaign = ?", [run_id, campaign])
        wh.append_df(con, REPORTS, rows)
        wh.commit(con)
