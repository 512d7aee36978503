"""Task functions of the ingest_events DAG."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ml import config
from ml.warehouse import Warehouse

log = logging.getLogger(__name__)


def ingest_landing(
    paths: list[str] | None = None,
    threshold: float | None = None,
    warehouse: str | None = None,
    skip_when_nothing_new: bool = False,
) -> list[dict[str, Any]]:
    """Ingest landing files/folders (default: the landing folder), landing gate included.

    A blocked batch (too many bad rows, or a failed landing gate) or a bad file fails the task
    *without retries* (retrying cannot fix data), so nothing downstream runs. With
    ``skip_when_nothing_new`` (the hourly DAG), a run that accepted no new row skips the task, so
    no ``raw_events`` asset event is emitted and features are not rebuilt for nothing.
    """
    from dataclasses import replace

    from ml.config import IngestSettings
    from ml.ingest.landing import BatchBlocked, LandingFileError, ingest_paths
    from ml.orchestration.errors import fail_without_retry, skip_task

    settings = IngestSettings()
    if threshold is not None:
        settings = replace(settings, quarantine_threshold=float(threshold))
    targets = [Path(p) for p in (paths or [str(config.landing_dir())])]
    try:
        reports = ingest_paths(targets, Warehouse.from_env(warehouse), settings)
    except BatchBlocked as exc:
        log.error("ingest %s", json.dumps(exc.report.accounting()))
        fail_without_retry(str(exc))
    except LandingFileError as exc:
        fail_without_retry(str(exc))
    out = [r.accounting() for r in reports]
    for line in out:
        log.info("ingest %s", json.dumps(line))
    if skip_when_nothing_new and not any(r["status"] == "accepted" and r["accepted"] > 0 for r in out):
        skip_task(f"nothing new in {', '.join(map(str, targets))}: {len(out)} file(s), no new rows accepted")
    return out
