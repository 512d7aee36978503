"""Import-light defaults shared by DAG files and ``ml`` (no numpy/pandas here)."""

from __future__ import annotations

from typing import Any

FAMILY = "recommender"
PRIMARY_METRIC = "ndcg@10"

# One config per model in ml.recommend.MODELS, for manual runs (paste into the `candidates` Param).
ALL_CANDIDATES: list[dict[str, Any]] = [
    {"model": "popularity", "params": {"half_life_days": 14.0}},
    {"model": "item_knn", "params": {"neighbours": 100, "shrinkage": 10.0}},
    {"model": "user_knn", "params": {"neighbours": 50, "shrinkage": 10.0}},
    {"model": "als", "params": {"factors": 64, "regularization": 1.0, "alpha": 5.0, "iterations": 15}},
    {"model": "bpr", "params": {"factors": 64, "learning_rate": 0.05, "regularization": 0.01, "iterations": 20}},
    {"model": "ease", "params": {"l2": 500.0, "dropout": 0.25, "session_weight": 0.5}},
    {"model": "content", "params": {"popularity_weight": 0.3}},
    {"model": "two_tower", "params": {"dim": 64, "hidden": 256, "epochs": 30}},
    {"model": "context", "params": {"base": "item_knn", "recency_weight": 0.3, "markov_weight": 0.2}},
    {"model": "blend", "params": {"components": [{"model": "ease"}, {"model": "item_knn"}, {"model": "als"}]}},
]
MODEL_NAMES: list[str] = [c["model"] for c in ALL_CANDIDATES]

# The candidates retrain_models trains by default: the models that win on the time-based
# holdout of the default and large shops (`python -m ml bench candidates`; the comparison is in
# docs/benchmarks.md), the Keras two-tower model among them. CI and quick runs pass a cheaper
# set through the DAG's `candidates` Param (run conf); they never shrink this list.
DEFAULT_MODELS = ("item_knn", "als", "ease", "two_tower", "blend")
DEFAULT_CANDIDATES: list[dict[str, Any]] = [c for c in ALL_CANDIDATES if c["model"] in DEFAULT_MODELS]

# Gate defaults (the retrain_models Params start from these).
GATE_MARGIN = 0.0
GATE_MIN_COVERAGE = 0.0
GATE_MAX_COVERAGE_DROP = 0.5
GATE_MIN_NEW_USER_HIT_RATE = 0.0
