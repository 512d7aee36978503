"""Campaign reports on PostgreSQL (the scale-out warehouse): the same rows as on DuckDB."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.dbt]


def test_report_campaigns_writes_the_reports_on_postgres_and_a_rerun_replaces_them(pg_warehouse, tiny_shop, tmp_path):
    from ml.features.dbt import build
    from ml.ingest.landing import ingest_paths
    from ml.marketing.report import REPORTS
    from ml.tasks.marketing import report_campaigns

    wh = pg_warehouse
    ingest_paths([tiny_shop], wh)
    build(wh, select="tag:staging", target_path=tmp_path / "target")
    first = report_campaigns(run_id="pg-1", n_boot=200)
    # the tiny shop lived through winter_outdoor_sale's window; cosy_home_week starts after it
    assert set(first["reported"]) == {"winter_outdoor_sale"} and "cosy_home_week" in first["skipped"]
    report_campaigns(run_id="pg-1", n_boot=200)  # the same run again
    every = wh.query(f"select metric, treatment_users, holdout_users, spend, roas, copy_variant from {REPORTS}")
    # the whole arm per metric, and each of the campaign's 3 copy variants per metric: none twice
    assert len(every) == 3 + 3 * 3 and not every.duplicated(["metric", "copy_variant"]).any()
    rows = every[every["copy_variant"].isna()].sort_values("metric").reset_index(drop=True)
    assert rows["metric"].tolist() == ["clicks", "purchases", "revenue"]
    assert (rows["treatment_users"] > 0).all() and (rows["holdout_users"] > 0).all()
    revenue = rows.iloc[2]
    assert revenue["spend"] == 1500.0 and revenue["roas"] == pytest.approx(
        first["reported"]["winter_outdoor_sale"]["roas"]
    )
