"""Task functions of the build_features DAG: dbt (direct path), quality gates, behaviour patterns.

Each is one call into ``ml``; a failed gate fails its task without retries (re-running cannot
fix data) and with the gate's readable summary, so nothing downstream runs.
"""

from __future__ import annotations

import logging
from typing import Any

from ml.warehouse import Warehouse

log = logging.getLogger(__name__)


def build_features(warehouse: str | None = None, select: str | None = None) -> dict[str, Any]:
    """``dbt build`` of the whole project (direct path; the DAG renders it with cosmos)."""
    from ml.features.dbt import build

    res = build(Warehouse.from_env(warehouse), select=select)
    return {"seconds": round(res.seconds, 2)}


def _gate(check: Any, run_id: str, warehouse: str | None) -> dict[str, Any]:
    from ml.orchestration.errors import fail_without_retry
    from ml.quality.runner import GateFailure

    try:
        result = check(Warehouse.from_env(warehouse), run_id=run_id)
    except GateFailure as exc:
        fail_without_retry(str(exc))
    return {
        "gate": result.gate,
        "passed": result.passed,
        "expectations": result.n_expectations,
        "rows": result.details.get("rows"),
        "data_docs": result.data_docs_path,
    }


def gate_staged_events(run_id: str = "manual", warehouse: str | None = None) -> dict[str, Any]:
    """The ``staged_events`` gate on the events staged since its last passed run."""
    from ml.quality.gates import check_staged_events

    return _gate(check_staged_events, run_id, warehouse)


def score_reviews(run_id: str = "manual", warehouse: str | None = None) -> dict[str, Any]:
    """Review sentiment of the staged reviews not scored yet -> ``ml.review_sentiment``."""
    from ml.reviews.score import score_reviews as score

    return score(run_id=run_id, warehouse=warehouse)


def load_assistant_log(run_id: str = "manual", warehouse: str | None = None) -> dict[str, Any]:
    """The slates the shopping assistant showed (its JSONL log) -> ``ml.logged_slates``."""
    from ml.assistant.log import load_assistant_log as load

    return load(run_id=run_id, warehouse=warehouse)


def embed_items(run_id: str = "manual", warehouse: str | None = None) -> dict[str, Any]:
    """MiniLM embeddings of the items whose text is new or changed -> ``ml.item_embeddings``."""
    from ml.assistant.index import refresh_item_embeddings

    return refresh_item_embeddings(run_id=run_id, warehouse=warehouse)


def gate_marts(run_id: str = "manual", warehouse: str | None = None) -> dict[str, Any]:
    """The ``marts`` gate: nulls, ranges, volume and drift of the feature marts."""
    from ml.quality.gates import check_marts

    return _gate(check_marts, run_id, warehouse)


def check_marts(warehouse: str | None = None) -> dict[str, int]:
    """Row counts of the marts the models read; fails if any is empty."""
    wh = Warehouse.from_env(warehouse)
    counts = {}
    for t in ("interaction_events", "interactions", "item_features", "user_features"):
        counts[t] = int(wh.query(f"select count(*) as n from marts.{t}")["n"].iloc[0])
    empty = [t for t, n in counts.items() if n == 0]
    if empty:
        from ml.orchestration.errors import fail_without_retry

        fail_without_retry(f"empty marts: {empty}")
    return counts


def segment_users(run_id: str = "manual", warehouse: str | None = None) -> dict[str, Any]:
    """K-means user segments (k by silhouette) -> ``ml.user_segments``."""
    from ml.analysis.jobs import run_segments

    return run_segments(Warehouse.from_env(warehouse), run_id=run_id)


def mine_category_rules(run_id: str = "manual", warehouse: str | None = None) -> dict[str, Any]:
    """Association rules between categories -> ``ml.category_rules``."""
    from ml.analysis.jobs import run_category_rules

    return run_category_rules(Warehouse.from_env(warehouse), run_id=run_id)


def fit_category_transitions(run_id: str = "manual", warehouse: str | None = None) -> dict[str, Any]:
    """The Markov next-category model -> ``ml.category_transitions``."""
    from ml.analysis.jobs import run_category_transitions

    return run_category_transitions(Warehouse.from_env(warehouse), run_id=run_id)
