"""The candidates bench: train_candidate on the DAG's holdout for each chosen config, in task
processes, with a JSON record of metrics, seconds, peak RSS and the gate's choice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ml.bench.candidates import in_task_process

METRICS_IN_UNIT_RANGE = ("ndcg@10", "precision@10", "recall@10", "hit_rate@10", "coverage@10", "new_user_hit_rate@10")


@pytest.mark.unit
def test_a_task_that_raises_is_recorded_not_raised():
    task = in_task_process(json.loads, s="not json")
    assert task.value is None
    assert task.error is not None and task.error.startswith("JSONDecodeError")
    assert task.seconds > 0 and task.peak_rss_mb > 0


@pytest.mark.slow
@pytest.mark.dbt
def test_bench_on_the_tiny_shop_records_every_candidate_and_the_gate(tiny_shop: Path, tmp_path: Path):
    from ml.cli import main

    out = tmp_path / "bench"
    args = ["--size", "tiny", "--shop", str(tiny_shop), "--out", str(out), "--models", "popularity,item_knn"]
    rc = main(["bench", "candidates", *args])
    assert rc == 0
    payload = json.loads((out / "candidates.json").read_text())
    assert payload["holdout_days"] == 7.0
    assert payload["setup"]["prepare"]["error"] is None
    assert set(payload["setup"]["prepare"]["value"]) == {"ingest", "dbt_build", "category_transitions"}
    cands = {c["model"]: c for c in payload["candidates"]}
    assert list(cands) == ["popularity", "item_knn"]
    for c in cands.values():
        assert c["error"] is None and c["version_id"]
        assert c["task_seconds"] > 0 and c["peak_rss_mb"] > 0 and c["metrics"]["fit_seconds"] >= 0
        for m in METRICS_IN_UNIT_RANGE:
            assert 0.0 <= c["metrics"][m] <= 1.0, m
    best = max(cands.values(), key=lambda c: c["metrics"]["ndcg@10"])
    assert payload["gate"]["promoted"] is True
    assert payload["gate"]["champion"] == best["version_id"]
    assert payload["gate"]["champion_model"] == best["model"]
