"""Every benchmark draws a PNG from the payload it writes (synthetic payloads of each shape)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.unit

PNG = b"\x89PNG"


def _png(path) -> bool:
    return path.exists() and path.read_bytes().startswith(PNG) and path.stat().st_size > 5_000


def test_recsys_tagger_ope_and_pipeline_charts(tmp_path):
    from ml.bench import ope, pipeline, recsys, tagger

    rec = {"random": {"ease": {"ndcg@10": 0.43}, "item_knn": {"ndcg@10": 0.38}}, "temporal": {"ease": {"ndcg@10": 0.1}}}
    assert _png(recsys.chart(rec, tmp_path, 10))
    tag = {
        "models": {"tfidf": {"macro_f1": 0.5, "micro_f1": 0.6, "precision@3": 0.7}, "transformer": {"macro_f1": 0.6}}
    }
    assert _png(tagger.chart(tag, tmp_path))
    res = {
        "ground_truth": 0.005,
        "estimators": {
            "ips": {"mean_estimate": 0.0052, "ci_low": 0.004, "ci_high": 0.0065},
            "dr": {"mean_estimate": 0.0049, "ci_low": 0.0045, "ci_high": 0.0053},
        },
    }
    assert _png(ope.chart(res, tmp_path))
    pipe = {
        "size": "large",
        "warehouse": "duckdb",
        "total_seconds": 500.0,
        "stages": {"ingest": {"seconds": 60.0}, "dbt_build": {"seconds": 250.0}, "publish": {"seconds": 1.0}},
    }
    assert _png(pipeline.chart(pipe, tmp_path))


def test_features_coldstart_marketing_and_candidates_charts(tmp_path):
    from ml.bench import candidates, coldstart, features, marketing

    feats = [
        {"target": "duckdb", "ingest_seconds": 12.0, "dbt_build_seconds": 40.0},
        {"target": "postgres", "ingest_seconds": None, "dbt_build_seconds": None, "ok": False},
    ]
    assert _png(features.chart(feats, tmp_path, "default"))
    cold = {
        "k": 10,
        "holdout_days": 60,
        "before": {"new_users": {"users": 99, "with_slate": 0.0, "hit_rate": 0.0}},
        "after": {
            "new_users": {"users": 99, "with_slate": 1.0, "hit_rate": 0.25},
            "users_with_history": {"users": 892, "with_slate": 1.0, "hit_rate": 0.9},
        },
    }
    assert _png(coldstart.chart(cold, tmp_path))
    camp = {
        "campaign": {
            "campaign": "winter_outdoor_sale",
            "metrics": [
                {"metric": "clicks", "uplift": 0.01, "ci_low": -0.3, "ci_high": 0.4},
                {"metric": "purchases", "uplift": -0.05, "ci_low": -0.17, "ci_high": 0.07},
            ],
        }
    }
    assert _png(marketing.chart(camp, tmp_path))
    outcomes = [
        candidates.Outcome("ease", {}, metrics={"ndcg@10": 0.084}),
        candidates.Outcome("blend", {}, error="out of memory"),
    ]
    assert _png(candidates.chart(outcomes, tmp_path, "large"))
