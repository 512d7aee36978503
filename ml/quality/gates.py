"""The pipeline's data-quality gates: landing batch, staged events, feature marts.

Each gate loads its frames, runs its suite (``suites/<gate>.yml``) with Great Expectations
against the previous passed run's profile, records the run in ``quality.gate_runs`` and, when
it fails, raises :class:`GateFailure` with a readable summary (the landing gate instead lets the
ingest block the batch). The pre-publish gate is :func:`ml.quality.prepublish.check_recommendations`.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

import pandas as pd
import yaml

from ml import columns as C
from ml import config
from ml.config import IngestSettings
from ml.quality import store
from ml.quality.runner import GateFailure, GateResult, run_gate
from ml.quality.suite import SuiteSpec
from ml.warehouse import Warehouse

log = logging.getLogger(__name__)

STAGED_GATE = "staged_events"
MARTS_GATE = "marts"


@lru_cache(maxsize=1)
def weighted_event_types() -> tuple[str, ...]:
    """The event types of the dbt var ``event_weights`` (what the interaction marts keep)."""
    project = yaml.safe_load((config.DBT_DIR / "dbt_project.yml").read_text())
    weights = (project.get("vars") or {}).get("event_weights") or C.DEFAULT_EVENT_WEIGHTS
    return tuple(weights)


def gate_params(settings: IngestSettings | None = None, **extra: Any) -> dict[str, Any]:
    """The ``$name`` values suites may use."""
    settings = settings or IngestSettings()
    return {
        "price_cap": settings.price_cap,
        "event_types": list(C.EVENT_TYPES),
        "weighted_event_types": list(weighted_event_types()),
        **extra,
    }


def enforce(result: GateResult) -> GateResult:
    """Raise :class:`GateFailure` for a failed result; return it otherwise."""
    if not result.passed:
        raise GateFailure(result.gate, result.failures, result.data_docs_path, result)
    log.info("%s", result.summary())
    return result


def check_landing_batch(
    table: str, accepted: pd.DataFrame, batch_id: str, wh: Warehouse, con: Any, settings: IngestSettings | None = None
) -> GateResult:
    """Gate ``landing_<table>`` on the rows of a batch that passed the row rules, inside the
    ingest's transaction ``con``. Records the run; the caller blocks the batch if it failed."""
    gate = f"landing_{table}"
    reference = store.previous_profile(wh, gate, exclude_run_id=batch_id, con=con)
    result = run_gate(gate, {table: accepted}, batch_id, gate_params(settings), reference)
    store.record(wh, result, con)
    return result


def check_staged_events(wh: Warehouse | None = None, run_id: str = "manual") -> GateResult:
    """Gate the events staged since the last passed run (all of them the first time).

    The watermark (latest ``ingested_at`` checked) only moves on a passed run, so a bad
    increment keeps failing until it is fixed.
    """
    wh = wh or Warehouse.from_env()
    prev = store.previous_details(wh, STAGED_GATE, exclude_run_id=run_id)
    watermark = prev.get("watermark")
    cols = (
        "event_id",
        "event_at",
        "user_id",
        "event_type",
        "item_id",
        "search_query",
        "price",
        "quantity",
        "rating",
        "slot_position",
        "ingested_at",
    )
    if watermark:
        df = wh.read_table("staging.stg_shop__events", None, cols, "ingested_at > ?", [pd.Timestamp(watermark)])
    else:
        df = wh.read_table("staging.stg_shop__events", None, cols)
    result = run_gate(STAGED_GATE, {"stg_shop__events": df}, run_id, gate_params(), prev.get("profile") or {})
    newest = pd.to_datetime(df["ingested_at"]).max() if len(df) else None
    result.details["watermark"] = str(newest) if newest is not None and pd.notna(newest) else watermark
    result.details["checked_rows"] = len(df)
    store.record(wh, result)
    return enforce(result)


def check_marts(wh: Warehouse | None = None, run_id: str = "manual") -> GateResult:
    """Gate the feature marts: ranges and null rates, volume and drift vs the previous passed build."""
    wh = wh or Warehouse.from_env()
    suite = SuiteSpec.load(MARTS_GATE)
    frames = {}
    with wh.connect(read_only=True) as con:
        for name, spec in suite.frames.items():
            if spec.columns:  # (typed bulk reads on PostgreSQL)
                frames[name] = wh.read_table(
                    f"marts.{name}", con, list(dict.fromkeys((*spec.id_columns, *spec.columns)))
                )
            else:
                cols = ", ".join(dict.fromkeys((*spec.id_columns, "*")))
                frames[name] = wh.query(f"select {cols} from marts.{name}", None, con)
    reference = store.previous_profile(wh, MARTS_GATE, exclude_run_id=run_id)
    result = run_gate(MARTS_GATE, frames, run_id, gate_params(), reference, suite)
    store.record(wh, result)
    return enforce(result)
