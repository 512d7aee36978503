"""How old the served recommendations are, and the check that alerts when they are too old.

A blocked batch (a failed gate, a crashed retrain) never creates a ``publish_recommendations``
run, so nothing fails there and nothing would be said: the shop keeps serving yesterday's
slates, then last week's. The ``watch_serving`` DAG runs :func:`check_serving_age` every hour;
when the current version of ``serving.<name>_current`` was published longer ago than the allowed
age, the task fails with a readable message (the version, when it was published, the latest
failed data-quality gate since then) and the DAGs' failure notifier e-mails it
(:mod:`ml.orchestration.alerts`).

The allowed age is the DAG's ``max_age_hours`` Param, else ``INTERESTFLOW_SERVING_MAX_AGE_HOURS``
(default 36: a daily publish with half a day's slack), read when the check runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ml.publish.tables import current_version
from ml.quality.summary import latest_gate_runs
from ml.warehouse import Warehouse


class StaleServingError(RuntimeError):
    """The served table is older than allowed, or nothing has been published."""


@dataclass(frozen=True)
class ServingAge:
    """The current version of ``serving.<name>_current`` and how long ago it was published
    (``version`` None: nothing published yet)."""

    name: str
    version: str | None
    published_at: pd.Timestamp | None
    age_hours: float | None


def max_age_hours(value: float | None = None) -> float:
    """``value`` when given, else the ``INTERESTFLOW_SERVING_MAX_AGE_HOURS`` setting (default 36)."""
    if value is None:
        from ml.settings import settings

        return settings().serving_max_age_hours
    if not value > 0:
        raise ValueError(f"the allowed age of the served table must be > 0 hours, got {value}")
    return float(value)


def serving_age(
    name: str = "recommendations", wh: Warehouse | None = None, now: pd.Timestamp | None = None
) -> ServingAge:
    """The served version of ``name`` and its age, from ``serving.publish_log``."""
    wh = wh or Warehouse.from_env()
    now = pd.Timestamp.now(tz="UTC") if now is None else _utc(now)
    if wh.kind == "duckdb" and not wh.path.exists():
        return ServingAge(name, None, None, None)
    with wh.connect(read_only=True) as con:
        if not wh.table_exists(con, "serving", "publish_log"):
            return ServingAge(name, None, None, None)
        version = current_version(wh, con, name)
        if version is None:
            return ServingAge(name, None, None, None)
        log = wh.query(
            "select max(created_at) as published_at from serving.publish_log where name = ? and version = ?",
            [name, version],
            con,
        )
    published = _utc(log["published_at"].iloc[0])
    return ServingAge(name, version, published, (now - published).total_seconds() / 3600.0)


def _utc(value: object) -> pd.Timestamp:
    """``value`` as a UTC timestamp (a naive one is taken as UTC, as the warehouse stores it)."""
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _failed_gates_since(wh: Warehouse, since: pd.Timestamp | None) -> list[str]:
    """One line per gate whose latest run failed (at or after ``since`` when given)."""
    lines = []
    for run in latest_gate_runs(wh):
        checked = _utc(run["checked_at"])
        if run["passed"] or (since is not None and checked < since):
            continue
        failing = "; ".join(
            f"{f['expectation']} on {f.get('frame')}.{f.get('column')}: {f['failing_count']} failing"
            for f in run["failures"]
        )
        lines.append(
            f"gate {run['gate']} FAILED at {checked:%Y-%m-%d %H:%M} UTC (run {run['run_id']}): "
            f"{run['n_failed']} of {run['n_expectations']} expectations failed"
            + (f" ({failing})" if failing else "")
            + (f"; Data Docs: {run['data_docs_path']}" if run["data_docs_path"] else "")
        )
    return lines


def check_serving_age(
    max_age: float | None = None,
    name: str = "recommendations",
    wh: Warehouse | None = None,
    now: pd.Timestamp | None = None,
) -> dict:
    """Raise :class:`StaleServingError` when ``serving.<name>_current`` is missing or older than
    ``max_age`` hours; else return ``{name, version, published_at, age_hours, max_age_hours}``."""
    wh = wh or Warehouse.from_env()
    limit = max_age_hours(max_age)
    age = serving_age(name, wh, now)
    gates = _failed_gates_since(wh, age.published_at)
    why = ("\nFailed data-quality gates since then:\n  " + "\n  ".join(gates)) if gates else ""
    if age.version is None or age.age_hours is None or age.published_at is None:
        raise StaleServingError(
            f"serving.{name}_current serves nothing: no version has been published yet "
            f"(run publish_recommendations, or the chain ingest_events -> build_features -> "
            f"retrain_models -> publish_recommendations).{why}"
        )
    if age.age_hours > limit:
        raise StaleServingError(
            f"serving.{name}_current is {age.age_hours:.1f} h old, older than the allowed {limit:g} h: "
            f"version {age.version} was published at {age.published_at:%Y-%m-%d %H:%M} UTC and nothing "
            f"newer has been published since. The shop keeps serving it; check the latest runs of "
            f"ingest_events, build_features, retrain_models and publish_recommendations.{why}"
        )
    return {
        "name": name,
        "version": age.version,
        "published_at": age.published_at.isoformat(),
        "age_hours": round(age.age_hours, 3),
        "max_age_hours": limit,
    }
