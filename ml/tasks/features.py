"""Task functions of the build_features DAG (direct dbt path and mart checks)."""

from __future__ import annotations

import logging
from typing import Any

from ml.defaults import DEFAULT_CANDIDATES, FAMILY, PRIMARY_METRIC  # noqa: F401
from ml.warehouse import Warehouse

log = logging.getLogger(__name__)


def build_features(warehouse: str | None = None, select: str | None = None) -> dict[str, Any]:
    """``dbt build`` of the whole project (direct path; the DAG uses cosmos)."""
    from ml.features.dbt import build

    res = build(Warehouse.from_env(warehouse), select=select)
    return {"seconds": round(res.seconds, 2)}


def check_marts(warehouse: str | None = None) -> dict[str, int]:
    """Row counts of the marts the models read; fails if any is empty."""
    wh = Warehouse.from_env(warehouse)
    counts = {}
    for t in ("interaction_events", "interactions", "item_features"):
        counts[t] = int(wh.query(f"select count(*) as n from marts.{t}")["n"].iloc[0])
    empty = [t for t, n in counts.items() if n == 0]
    if empty:
        from ml.orchestration.errors import fail_without_retry

        fail_without_retry(f"empty marts: {empty}")
    return counts
