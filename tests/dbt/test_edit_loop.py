"""The data engineer's loop on the dbt project: freshness rules on the landing tables, exposures
that carry the lineage past the marts, and the docs cosmos serves in the Airflow UI."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.dbt


@pytest.fixture(scope="module")
def loaded(tiny_shop, tmp_path_factory):
    """A warehouse with the tiny shop ingested just now (and nothing built)."""
    from ml.ingest.landing import ingest_paths
    from ml.warehouse import Warehouse

    home = tmp_path_factory.mktemp("edit-loop")
    wh = Warehouse(f"duckdb:///{home / 'warehouse.duckdb'}")
    ingest_paths([tiny_shop], wh)
    return wh, home


def test_freshness_passes_on_a_fresh_batch_and_fails_once_events_stop_arriving(loaded, monkeypatch, capsys):
    from ml.cli import main

    wh, home = loaded
    monkeypatch.setenv("INTERESTFLOW_HOME", str(home))
    assert main(["dbt", "--warehouse", wh.url, "freshness"]) == 0
    assert "PASS freshness of shop.events" in capsys.readouterr().out
    with wh.connect() as con:  # the last export arrived four days ago
        wh.execute(con, "update raw.events set _ingested_at = _ingested_at - interval 4 day")
    try:
        assert main(["dbt", "--warehouse", wh.url, "freshness"]) == 1
        assert "ERROR STALE freshness of shop.events" in capsys.readouterr().out
    finally:
        with wh.connect() as con:
            wh.execute(con, "update raw.events set _ingested_at = _ingested_at + interval 4 day")


def test_exposures_carry_the_lineage_from_the_landing_tables_to_what_ml_serves(loaded, tmp_path):
    from ml.features.dbt import run_dbt

    wh, _ = loaded
    run_dbt(["parse"], wh, target_path=tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    exposures = {e["name"]: e for e in manifest["exposures"].values()}
    assert {"recommendations_serving", "model_training", "policy_evaluation", "interestflow_page"} <= set(exposures)
    serving = exposures["recommendations_serving"]["depends_on"]["nodes"]
    assert "model.interestflow.interactions" in serving and "model.interestflow.bandit_feedback" in serving
    # ... and each mart it reads leads back to the raw landing source
    parents = manifest["parent_map"]

    def upstream(node: str) -> set[str]:
        seen, todo = set(), [node]
        while todo:
            for p in parents.get(todo.pop(), []):
                if p not in seen:
                    seen.add(p)
                    todo.append(p)
        return seen

    assert "source.interestflow.shop.events" in upstream("model.interestflow.interactions")
    source = manifest["sources"]["source.interestflow.shop.events"]
    assert source["loaded_at_field"] == "_ingested_at" and source["freshness"]["error_after"]["count"] == 72


def test_the_generated_docs_are_served_by_cosmos_in_the_airflow_ui(loaded, monkeypatch, capsys):
    from fastapi.testclient import TestClient

    from ml import config
    from ml.cli import main

    wh, home = loaded
    monkeypatch.setenv("INTERESTFLOW_HOME", str(home))
    for key, value in config.airflow_env().items():
        monkeypatch.setenv(key, value)
    assert main(["dbt", "--warehouse", wh.url, "docs"]) == 0
    assert (config.dbt_docs_dir() / "index.html").exists() and "Browse > dbt Docs" in capsys.readouterr().out

    from cosmos.plugin.airflow3 import _load_projects_from_conf, create_cosmos_fastapi_app

    projects = _load_projects_from_conf()
    assert projects[config.DBT_DOCS_SLUG]["dir"] == str(config.dbt_docs_dir())
    client = TestClient(create_cosmos_fastapi_app())
    page = client.get(f"/{config.DBT_DOCS_SLUG}/dbt_docs_index.html")
    assert page.status_code == 200 and "dbt" in page.text.lower()
    manifest = client.get(f"/{config.DBT_DOCS_SLUG}/manifest.json").json()
    assert any(e["name"] == "interestflow_page" for e in manifest["exposures"].values())
