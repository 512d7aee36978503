"""Import-light defaults shared by DAG files and ``ml`` (no numpy/pandas here)."""

from __future__ import annotations

from typing import Any

FAMILY = "recommender"
PRIMARY_METRIC = "ndcg@10"
DEFAULT_CANDIDATES: list[dict[str, Any]] = [
    {"model": "popularity", "params": {"half_life_days": 14.0}},
    {"model": "item_knn", "params": {"neighbours": 100, "shrinkage": 10.0}},
]
