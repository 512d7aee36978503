"""``python -m ml bench pipeline`` end to end on the tiny shop: the JSON has the issue's shape and
its numbers are consistent (bounds measured on the same data, ratios derived from them)."""

from __future__ import annotations

import inspect
import json

import pytest

from ml.cli import main

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def tiny_bench(tmp_path_factory: pytest.TempPathFactory, tiny_shop) -> dict:
    import shutil

    out = tmp_path_factory.mktemp("bench")
    shutil.copytree(tiny_shop, out / "shop-tiny-seed7")  # reuse the session's shop
    # a cheaper candidate set than production's, as CI passes it (both runs would take it)
    cands = out / "candidates.json"
    cands.write_text(json.dumps([{"model": "popularity"}, {"model": "item_knn", "params": {"neighbours": 20}}]))
    args = ["bench", "pipeline", "--size", "tiny", "--warehouse", "duckdb", "--out", str(out)]
    assert main([*args, "--airflow", "skip", "--no-tagging", "--candidates", str(cands)]) == 0
    return json.loads((out / "pipeline.json").read_text())


def test_pipeline_json_has_the_issue_shape(tiny_bench):
    p = tiny_bench
    assert {"stages", "total_seconds", "peak_rss_mb", "ratios"} <= set(p)
    assert set(p["ratios"]) == {"scoring_vs_bare", "publish_vs_copy", "airflow_vs_direct"}
    for name, stage in p["stages"].items():
        assert set(stage) == {"seconds", "peak_rss_mb"}, name
        assert stage["seconds"] >= 0 and stage["peak_rss_mb"] > 0
    for required in ("ingest", "dbt_build", "gate", "score_with_exploration", "publish"):
        assert required in p["stages"]
    assert sorted(n for n in p["stages"] if n.startswith("fit:")) == ["fit:item_knn", "fit:popularity"]
    assert p["setup"]["candidates"][1] == {"model": "item_knn", "params": {"neighbours": 20}}
    assert p["total_seconds"] == pytest.approx(sum(s["seconds"] for s in p["stages"].values()), abs=0.01)
    assert p["peak_rss_mb"] == max(s["peak_rss_mb"] for s in p["stages"].values())


def test_bounds_and_ratios_come_from_the_same_run(tiny_bench):
    p = tiny_bench
    scoring, copy = p["bounds"]["scoring_bare"], p["bounds"]["publish_copy"]
    assert copy["rows"] == p["facts"]["published"]["rows"]
    assert scoring["users"] == p["facts"]["published"]["users"]
    assert p["ratios"]["publish_vs_copy"] == pytest.approx(
        p["stages"]["publish"]["seconds"] / copy["seconds"], rel=0.01
    )
    assert p["ratios"]["scoring_vs_bare"] == pytest.approx(
        p["stages"]["score_with_exploration"]["seconds"] / scoring["seconds"], rel=0.01
    )
    assert scoring["two_threads_seconds"] > 0
    # each bound is the fastest of its runs; the kernel's blocks are recommend()'s
    assert len(scoring["runs_seconds"]) == 2 and scoring["seconds"] == pytest.approx(min(scoring["runs_seconds"]))
    assert scoring["two_threads_seconds"] == pytest.approx(min(scoring["runs_two_threads_seconds"]))
    assert copy["seconds"] == pytest.approx(min(copy["runs_seconds"]))
    from ml.recommend.base import SCORING_BATCH, Recommender

    assert (
        scoring["batch"] == SCORING_BATCH == inspect.signature(Recommender.recommend).parameters["batch_size"].default
    )
    assert p["informative"]["scoring_vs_bare_two_threads"] == pytest.approx(
        p["stages"]["score_with_exploration"]["seconds"] / scoring["two_threads_seconds"], rel=0.01
    )
    assert p["ratios"]["airflow_vs_direct"] is None  # --airflow skip
    assert p["throughput"]["events_per_s"] > 0 and p["facts"]["events_ingested"] > 0


def test_scoring_parts_account_for_the_scoring_stage(tiny_bench):
    """The publish call's own stage timings (ml.timing.stage, read from its return value, no
    patching) tell where the scoring stage's time went."""
    parts = tiny_bench["facts"]["scoring_parts_seconds"]
    assert {"score", "with_champion", "contexts", "slates", "reasons", "marketing"} <= set(parts)
    # the shards' reads, slate-log rows and parts, and the switch's read of the parts
    assert {"serving_inputs", "marketing_inputs", "slate_log_rows", "write_part", "read_parts"} <= set(parts)
    assert all(v >= 0 for v in parts.values())
    # one thread: the parts run one after another inside the stage, so together they cannot
    # exceed it (small rounding slack)
    assert sum(parts.values()) <= tiny_bench["stages"]["score_with_exploration"]["seconds"] + 0.05
    for stage in ("prepublish_gate", "slate_log", "publish"):
        assert stage not in parts and tiny_bench["stages"][stage]["seconds"] >= 0
