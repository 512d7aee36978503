"""generate_copy on PostgreSQL (the scale-out warehouse): the copy tables and the candidate log
switch together, and a rerun of the run writes the same rows once."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.dbt, pytest.mark.slow]


def test_generate_copy_publishes_on_postgres_and_a_rerun_replaces_its_rows(pg_warehouse, tiny_shop, tmp_path):
    from ml.features.dbt import build
    from ml.ingest.landing import ingest_paths
    from ml.tasks.marketing import generate_copy, publish_audiences

    wh = pg_warehouse
    ingest_paths([tiny_shop], wh, gate=False)
    assert build(wh, target_path=tmp_path / "target").returncode == 0
    publish_audiences(run_id="pg-1")
    first = generate_copy(run_id="pg-1", lm_settings={"steps": 30, "batch_size": 8})
    assert first["audiences"] and first["candidates"] > 0
    for name, summary in first["audiences"].items():
        copy = wh.query(f"select campaign, variant, text, source from serving.copy_{name}_current order by 1, 2")
        assert len(copy) == summary["variants"] == 6 and set(copy["source"]) <= {"model", "template"}
    log = wh.query("select audience, campaign, variant, attempt, passed, published from ml.copy_candidates")
    assert len(log) >= first["candidates"] and log["published"].sum() == sum(
        a["variants"] for a in first["audiences"].values()
    )
    again = generate_copy(run_id="pg-1", lm_settings={"steps": 30, "batch_size": 8})
    assert again["pass_rate"] == first["pass_rate"]
    rerun = wh.query("select audience, campaign, variant, attempt, passed, published from ml.copy_candidates")
    assert len(rerun) == len(log) and not rerun.duplicated(["audience", "campaign", "variant", "attempt"]).any()
