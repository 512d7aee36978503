"""`python -m ml campaign report NAME` on a warehouse: exposed users are split into the campaign's
hashed arms, events outside the window do not count, and the uplift comes with its interval."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ml.cli import main
from ml.marketing.campaigns import HOLDOUT, arm, load_campaigns

pytestmark = pytest.mark.unit

NAME = "winter_outdoor_sale"


def _events(camp) -> pd.DataFrame:
    """Every user sees an impression in the window; treated users click 3 times, held-out users
    once, and everyone clicks 50 times *after* the window (which must not count). Everyone buys
    once in the window: treated users 2 items at 15.0, held-out users one at 10.0."""
    users = np.array([f"U{i:07d}" for i in range(3000)])
    held = arm(users, camp) == HOLDOUT
    inside = camp.start + pd.Timedelta(days=2)
    after = camp.end + pd.Timedelta(days=1)
    rows = []
    for u, h in zip(users, held, strict=True):
        rows.append((u, "impression", inside, None, None))
        rows += [(u, "click", inside, None, None)] * (1 if h else 3)
        rows.append((u, "purchase", inside, 10.0 if h else 15.0, 1 if h else 2))
        rows += [(u, "click", after, None, None)] * 50
    return pd.DataFrame(rows, columns=["user_id", "event_type", "event_at", "price", "quantity"])


def test_report_gives_the_uplift_per_user_with_a_confidence_interval(warehouse, capsys):
    camp = load_campaigns()[NAME]
    events = _events(camp)
    with warehouse.connect() as con:
        warehouse.execute(con, "create schema if not exists staging")
        con.register("ev", events)
        con.execute("create table staging.stg_shop__events as select * from ev")

    assert main(["campaign", "report", NAME, "--json", "--warehouse", warehouse.url]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["campaign"] == NAME and rep["exposed_users"] == 3000
    clicks, purchases = (next(m for m in rep["metrics"] if m["metric"] == k) for k in ("clicks", "purchases"))
    assert clicks["treatment_users"] + clicks["holdout_users"] == 3000
    assert 0.05 < clicks["holdout_users"] / 3000 < 0.15  # the campaign's 10 % holdout
    assert clicks["treatment_mean"] == 3.0 and clicks["holdout_mean"] == 1.0 and clicks["uplift"] == 2.0
    assert clicks["ci_low"] <= 2.0 <= clicks["ci_high"]
    assert purchases["uplift"] == 0.0 and purchases["ci_low"] <= 0.0 <= purchases["ci_high"]
    # revenue 30 vs 10 per user; the campaign's spec spends 1500: ROAS = 20 x treated users / 1500
    revenue = next(m for m in rep["metrics"] if m["metric"] == "revenue")
    treated = revenue["treatment_users"]
    assert revenue["uplift"] == 20.0 and revenue["incremental"] == 20.0 * treated
    assert rep["spend"] == 1500.0 and revenue["roas"] == pytest.approx(20.0 * treated / 1500.0)
    assert revenue["roas_low"] <= revenue["roas"] <= revenue["roas_high"]
    # and the run was written to ml.campaign_reports, one row per metric, and per copy variant
    written = warehouse.query("select metric, roas, copy_variant from ml.campaign_reports where campaign = ?", [NAME])
    whole = written[written["copy_variant"].isna()]
    assert sorted(whole["metric"]) == ["clicks", "purchases", "revenue"]
    per_variant = written.dropna(subset=["copy_variant"])
    assert len(per_variant) == 3 * 3 and per_variant["roas"].isna().all()  # 3 variants x 3 metrics
    assert {r["copy_variant"] for r in rep["variants"]} == {0, 1, 2}

    assert main(["campaign", "report", NAME, "--warehouse", warehouse.url, "--no-write"]) == 0
    text = capsys.readouterr().out
    assert "clicks" in text and "ci_low" in text and "ROAS" in text
    assert "per marketing copy variant" in text
    assert len(warehouse.query("select * from ml.campaign_reports")) == 12  # --no-write wrote nothing

    assert main(["campaign", "report", "no_such_campaign", "--warehouse", warehouse.url]) == 2
