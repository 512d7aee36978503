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
    once, and everyone clicks 50 times *after* the window (which must not count)."""
    users = np.array([f"U{i:07d}" for i in range(3000)])
    held = arm(users, camp) == HOLDOUT
    inside = camp.start + pd.Timedelta(days=2)
    after = camp.end + pd.Timedelta(days=1)
    rows = []
    for u, h in zip(users, held, strict=True):
        rows.append((u, "impression", inside))
        rows += [(u, "click", inside)] * (1 if h else 3)
        rows.append((u, "purchase", inside))
        rows += [(u, "click", after)] * 50
    return pd.DataFrame(rows, columns=["user_id", "event_type", "event_at"])


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

    assert main(["campaign", "report", NAME, "--warehouse", warehouse.url]) == 0
    text = capsys.readouterr().out
    assert "clicks" in text and "ci_low" in text

    assert main(["campaign", "report", "no_such_campaign", "--warehouse", warehouse.url]) == 2
