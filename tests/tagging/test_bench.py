"""``python -m ml bench tagger``: the table and JSON it writes, and honest tuning (baselines only,
tiny shop, no profiles: the transformer and the dbt part are too slow for a unit test)."""

from __future__ import annotations

import argparse
import json

import pytest

from ml.bench import tagger as bench

pytestmark = pytest.mark.unit


def _args(tmp_path, *extra: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    bench.add_arguments(p)
    return p.parse_args(["--out", str(tmp_path), *extra])


def test_defaults_are_the_default_shop_with_every_model_and_the_profiles():
    args = _args("x")
    assert args.size == "default" and args.models.split(",") == list(bench.MODELS)
    assert not (args.no_profiles or args.profiles_only or args.no_tuning or args.no_transformer_tuning)


def test_every_model_is_tuned_on_validation_unless_its_knob_is_fixed_or_tuning_is_off(tmp_path):
    for name in bench.MODELS:
        assert len(bench.tuning_grid(name, {}, _args(tmp_path))) > 1
    # a knob fixed on the command line is not tuned: nothing left to choose
    assert bench.tuning_grid("transformer", {"class_weight": None}, _args(tmp_path)) == []
    assert bench.tuning_grid("transformer", {"epochs": 1}, _args(tmp_path, "--epochs", "1"))
    assert bench.tuning_grid("transformer", {}, _args(tmp_path, "--no-transformer-tuning")) == []
    assert bench.tuning_grid("naive_bayes", {}, _args(tmp_path, "--no-transformer-tuning"))
    assert all(bench.tuning_grid(n, {}, _args(tmp_path, "--no-tuning")) == [] for n in bench.MODELS)


def test_bench_prints_the_table_and_writes_the_models_json(tmp_path, capsys):
    args = _args(tmp_path, "--size", "tiny", "--models", "naive_bayes,logistic_regression", "--no-profiles")
    assert bench.run(args) == 0
    printed = capsys.readouterr().out
    assert "naive_bayes" in printed and "logistic_regression" in printed and "macro_f1" in printed
    payload = json.loads((tmp_path / "tagger.json").read_text())
    assert set(payload["models"]) == {"naive_bayes", "logistic_regression"}
    for name, r in payload["models"].items():
        assert {"macro_f1", "micro_f1", "fit_seconds", "items_per_second", "tuning_seconds"} <= set(r)
        assert 0.0 <= r["macro_f1"] <= 1.0 and r["items_per_second"] > 0
        # the fitted model uses the params that scored best on the validation part
        best = max(r["tuning"], key=lambda t: t["validation_macro_f1"])["params"]
        assert {k: r["params"][k] for k in best} == best, name
    assert payload["config"]["size"] == "tiny" and payload["config"]["test_items"] > 0
    assert "profiles" not in payload


def test_unknown_models_are_refused(tmp_path):
    with pytest.raises(SystemExit, match="unknown models"):
        bench.run(_args(tmp_path, "--size", "tiny", "--models", "bert", "--no-profiles"))
