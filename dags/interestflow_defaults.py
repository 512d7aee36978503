"""Shared defaults for Interestflow DAGs: default_args, assets, pools, tags.

Kept tiny and import-light so the DAG processor parses every DAG file in milliseconds.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset
from airflow.sdk.definitions.callback import SyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

from ml.orchestration.alerts import notify_deadline, notify_failure

OWNER = "interestflow"
START = datetime(2026, 1, 1)
DEFAULT_ARGS = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    # an e-mail through the `interestflow_alerts` SMTP Connection when a task fails for good
    # (off when that connection is not defined): ml/orchestration/alerts.py
    "on_failure_callback": notify_failure,
}
# DuckDB allows a single writer process: every task that writes the warehouse takes this pool.
WAREHOUSE_POOL = "warehouse"
APPROVED_TAGS = {
    "interestflow",
    "ingest",
    "features",
    "training",
    "publishing",
    "tagging",
    "explore",
    "marketing",
    "quality",
    "backfill",
}

RAW_EVENTS = Asset(name="raw_events", uri="interestflow://warehouse/raw/events")
FEATURE_MARTS = Asset(name="feature_marts", uri="interestflow://warehouse/marts")
CHAMPION_MODEL = Asset(name="champion_model", uri="interestflow://registry/recommender/champion")
POLICY_CHAMPION = Asset(name="policy_champion", uri="interestflow://registry/policy/champion")
RECOMMENDATIONS = Asset(name="recommendations", uri="interestflow://warehouse/serving/recommendations_current")


def publish_deadline() -> DeadlineAlert:
    """The deadline alert of publish_recommendations: an e-mail (ml/orchestration/alerts.py) when
    a run has not finished INTERESTFLOW_PUBLISH_DEADLINE_MINUTES (default 120) after it was queued."""
    from ml.settings import settings

    minutes = settings().publish_deadline_minutes
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(minutes=minutes),
        callback=SyncCallback(notify_deadline, kwargs={"minutes": minutes}),
    )
