"""Real candidates trained on a real DuckDB warehouse, registered, gated and smoke-loaded."""

import json
from pathlib import Path

import pytest

from ml.registry import Registry
from ml.tasks.training import evaluate_and_gate, train_candidate, training_snapshot_id

pytestmark = pytest.mark.slow


def test_candidates_are_registered_with_everything_needed(marts_warehouse):
    res = train_candidate("item_knn", {"neighbours": 20}, run_id="r1", holdout_days=3)
    v = Registry().get(res["version_id"])
    assert v["model_name"] == "item_knn" and v["params"]["neighbours"] == 20 and v["params"]["holdout_days"] == 3
    for key in ("ndcg@10", "precision@10", "coverage@10", "map_rel@10", "new_user_hit_rate@10", "eval_users"):
        assert key in v["metrics"], key
    assert 0.0 <= v["metrics"]["ndcg@10"] <= 1.0 and v["metrics"]["eval_users"] > 0
    assert v["snapshot_id"].startswith("snap-") and v["git_sha"]
    assert Path(v["artifact_path"]).stat().st_size == v["artifact_bytes"] > 0
    assert v["train_seconds"] >= 0
    again = train_candidate("item_knn", {"neighbours": 20}, run_id="r1", holdout_days=3)
    quality = {k: v for k, v in res["metrics"].items() if k != "fit_seconds"}
    assert again["version_id"] == res["version_id"]  # idempotent: same version, same holdout metrics
    assert {k: v for k, v in again["metrics"].items() if k != "fit_seconds"} == quality
    assert (Registry().versions()["version_id"] == res["version_id"]).sum() == 1


def test_gate_promotes_then_keeps_the_champion_and_says_why(marts_warehouse):
    cands = [
        train_candidate("popularity", {"half_life_days": 14.0}, run_id="r1", holdout_days=3),
        train_candidate("ease", {"l2": 50.0, "session_weight": 0.5}, run_id="r1", holdout_days=3),
    ]
    first = evaluate_and_gate(cands, run_id="r1")
    best = max(cands, key=lambda c: c["metrics"]["ndcg@10"])
    assert first["promoted"] and first["champion"] == best["version_id"]
    assert "smoke load ok" in first["reason"]
    decision = Registry().decisions().iloc[-1]
    assert bool(decision["promoted"]) and json.loads(decision["details"])["smoke_load"]["explained"]

    challenger = train_candidate("item_knn", {"neighbours": 20}, run_id="r2", holdout_days=3)
    second = evaluate_and_gate([challenger], run_id="r2", margin=0.5)
    assert not second["promoted"]
    assert second["champion"] == best["version_id"]
    assert "stays" in second["reason"] and "margin 0.5" in second["reason"]
    assert not bool(Registry().decisions().iloc[-1]["promoted"])


def test_a_challenger_whose_artifact_does_not_load_is_not_promoted(marts_warehouse):
    cand = train_candidate("popularity", {}, run_id="r3", holdout_days=3)
    Path(Registry().get(cand["version_id"])["artifact_path"]).write_bytes(b"not a pickle")
    out = evaluate_and_gate([cand], run_id="r3")
    assert not out["promoted"] and "smoke load failed" in out["reason"]
    assert Registry().champion("recommender") is None


def test_new_user_guard_blocks_promotion(marts_warehouse):
    cand = train_candidate("popularity", {}, run_id="r4", holdout_days=3)
    out = evaluate_and_gate([cand], run_id="r4", min_new_user_hit_rate=1.0)
    assert not out["promoted"] and "new_user_hit_rate@10" in out["reason"]


def test_snapshot_id_comes_from_the_training_snapshots_mart_when_present(marts_warehouse):
    from ml.features.interactions import load_interaction_events

    events = load_interaction_events(marts_warehouse)
    fallback = training_snapshot_id(marts_warehouse, events, events["event_at"].max())
    assert fallback.startswith("snap-")
    with marts_warehouse.connect() as con:
        con.execute("create table marts.training_snapshots (snapshot_id varchar, created_at timestamp)")
        con.execute("insert into marts.training_snapshots values ('ts-old', '2026-01-01'), ('ts-new', '2026-02-01')")
    assert training_snapshot_id(marts_warehouse, events, events["event_at"].max()) == "ts-new"


def test_registry_command_line(marts_warehouse, capsys):
    from ml.cli import main

    a = train_candidate("popularity", {}, run_id="c1", holdout_days=3)["version_id"]
    b = train_candidate("item_knn", {"neighbours": 10}, run_id="c1", holdout_days=3)["version_id"]
    assert main(["registry", "promote", a, "--reason", "first", "--skip-smoke"]) == 0
    assert main(["registry", "promote", b, "--reason", "second"]) == 0  # with a smoke load
    assert Registry().champion("recommender")["version_id"] == b
    assert main(["registry", "list"]) == 0
    out = capsys.readouterr().out
    assert a in out and b in out and "*" in out
    assert main(["registry", "show", b]) == 0
    assert json.loads(capsys.readouterr().out)["model_name"] == "item_knn"
    assert main(["registry", "rollback"]) == 0
    assert Registry().champion("recommender")["version_id"] == a
    assert main(["registry", "show", "nope"]) == 2
    assert main(["registry", "decisions"]) == 0
    assert "manual override" in capsys.readouterr().out
