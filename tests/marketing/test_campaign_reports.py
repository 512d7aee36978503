"""Campaign spend, ROAS and the ml.campaign_reports table the page reads."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from ml.marketing.campaigns import Campaign
from ml.marketing.report import REPORTS, report_rows, return_on_spend, write_reports

pytestmark = pytest.mark.unit

SPEC = {"name": "c1", "start": "2026-10-01", "end": "2026-10-08", "boost_tags": ["cat:x"]}


@pytest.mark.parametrize("spend", [-1.0, 0, "100", True, float("inf")])
def test_a_spend_must_be_a_positive_number(spend):
    with pytest.raises(ValueError, match="spend must be a positive number"):
        Campaign.from_dict({**SPEC, "spend": spend})


def test_roas_is_the_incremental_revenue_over_the_spend_with_its_interval():
    row = {"treatment_users": 90, "uplift": 2.0, "ci_low": -0.5, "ci_high": 4.0}
    assert return_on_spend(row, 60.0) == {"incremental": 180.0, "roas": 3.0, "roas_low": -0.75, "roas_high": 6.0}
    assert return_on_spend(row, None) == {"incremental": 180.0, "roas": None, "roas_low": None, "roas_high": None}


def _report(uplift: float) -> dict:
    base = {
        "campaign": "winter_outdoor_sale",
        "treatment_users": 90,
        "holdout_users": 10,
        "treatment_mean": 1.0,
        "holdout_mean": 0.5,
    }
    metrics = [
        {**base, "metric": "clicks", "uplift": uplift, "ci_low": 0.1, "ci_high": 0.9},
        {
            **base,
            "metric": "revenue",
            "uplift": 2.0,
            "ci_low": 1.0,
            "ci_high": 3.0,
            **return_on_spend({"treatment_users": 90, "uplift": 2.0, "ci_low": 1.0, "ci_high": 3.0}, 60.0),
        },
    ]
    return {
        "campaign": "c1",
        "window": ["2026-10-01T00:00:00", "2026-10-08T00:00:00"],
        "spend": 60.0,
        "metrics": metrics,
    }


def test_a_rerun_replaces_its_rows_and_the_page_shows_each_campaigns_latest_report(warehouse, tmp_path):
    from ml.ui import views
    from ml.ui.reader import WarehouseReader

    write_reports(warehouse, report_rows(_report(0.5), "run-1", datetime(2026, 10, 2)))
    write_reports(warehouse, report_rows(_report(0.6), "run-1", datetime(2026, 10, 2, 1)))  # the same run again
    write_reports(warehouse, report_rows(_report(0.7), "run-2", datetime(2026, 10, 3)))
    rows = warehouse.query(f"select run_id, metric, uplift, roas from {REPORTS} order by run_id, metric")
    assert rows[["run_id", "metric"]].values.tolist() == [
        ["run-1", "clicks"],
        ["run-1", "revenue"],
        ["run-2", "clicks"],
        ["run-2", "revenue"],
    ]
    assert rows["uplift"].tolist()[0] == 0.6 and pd.isna(rows["roas"].iloc[0]) and rows["roas"].iloc[1] == 3.0

    reader = WarehouseReader(warehouse, snapshot_dir=tmp_path / "snaps", refresh_seconds=0.0, quiet_seconds=0.0)
    with reader.session() as rs:
        page = views.campaigns(rs)
    assert page["reports"]["available"] and page["reports"]["reported"] == ["winter_outdoor_sale"]
    shown = {c["campaign"]: c for c in page["campaigns"]}
    assert set(shown) == {"cosy_home_week", "winter_outdoor_sale"} and shown["cosy_home_week"]["report"] is None
    latest = shown["winter_outdoor_sale"]["report"]
    assert latest["run_id"] == "run-2" and shown["winter_outdoor_sale"]["spend"] == 1500.0
    assert "variants" not in latest and shown["winter_outdoor_sale"]["discount_percent"] == 15
    by_metric = {m["metric"]: m for m in latest["metrics"]}
    assert by_metric["clicks"]["uplift"] == 0.7 and by_metric["revenue"]["roas"] == 3.0


def test_copy_variant_rows_are_stored_and_shown_apart_and_an_older_table_gains_the_column(warehouse, tmp_path):
    from ml.ui import views
    from ml.ui.reader import WarehouseReader

    with warehouse.connect() as con:  # a table written before copy variants existed
        warehouse.ensure_schemas(con)
        warehouse.execute(
            con,
            f"create table {REPORTS} (reported_at timestamp, run_id varchar, campaign varchar, window_start timestamp, "
            "window_end timestamp, metric varchar, treatment_users bigint, holdout_users bigint, "
            "treatment_mean double precision, holdout_mean double precision, uplift double precision, "
            "ci_low double precision, ci_high double precision, spend double precision, incremental double precision, "
            "roas double precision, roas_low double precision, roas_high double precision)",
        )
        con.commit()
    report = _report(0.5)
    clicks = report["metrics"][0]
    report["variants"] = [{**clicks, "copy_variant": 0, "uplift": 0.1}, {**clicks, "copy_variant": 1, "uplift": 0.9}]
    write_reports(warehouse, report_rows(report, "run-1", datetime(2026, 10, 2)))
    stored = warehouse.query(f"select copy_variant, metric, uplift from {REPORTS} order by copy_variant, metric")
    assert stored["copy_variant"].tolist()[:2] == [0, 1] and stored["copy_variant"].isna().sum() == 2
    reader = WarehouseReader(warehouse, snapshot_dir=tmp_path / "snaps", refresh_seconds=0.0, quiet_seconds=0.0)
    with reader.session() as rs:
        page = views.campaigns(rs)
    latest = {c["campaign"]: c for c in page["campaigns"]}["winter_outdoor_sale"]["report"]
    assert [m["metric"] for m in latest["metrics"]] == ["clicks", "revenue"]
    assert [(v["copy_variant"], v["uplift"]) for v in latest["variants"]] == [(0, 0.1), (1, 0.9)]
    assert not page["copy"]["available"] and "generate_copy" in page["copy"]["message"]


def test_a_spec_with_a_bad_spend_names_its_file_and_the_rule(tmp_path):
    from ml.marketing.campaigns import load_campaigns

    (tmp_path / "bad.yml").write_text(
        'name: bad\nstart: "2026-10-01"\nend: "2026-10-08"\nboost_tags: ["cat:x"]\nspend: lots\n'
    )
    with pytest.raises(ValueError, match=r"bad\.yml: invalid campaign: .*spend must be a positive number"):
        load_campaigns(tmp_path)
