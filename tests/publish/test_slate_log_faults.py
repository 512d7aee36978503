"""A publish SIGKILLed at each boundary between switching the serving version and logging its
slates: the warehouse serves either the old version with its complete slate log, or the new one
with its complete log, never a version whose impressions OPE and the feedback mart would miss.

The publisher (``tests/publish/slate_publisher.py``) runs the real ``publish_recommendations``
on a copy of the warehouse the pipeline fixture built, and kills itself at one boundary."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ml.publish import list_versions
from ml.publish.tables import version_for
from ml.warehouse import Warehouse

pytestmark = [pytest.mark.dags, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
RUN = "fault-run"


def _publish(wh: Warehouse, boundary: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.publish.slate_publisher", RUN, boundary],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "INTERESTFLOW_WAREHOUSE": wh.url},
        capture_output=True,
        text=True,
        timeout=600,
    )


def _served_and_logged(wh: Warehouse) -> tuple[str, dict[str, int]]:
    """The run id served now, and per logged run: slate rows minus served rows, contexts minus
    served users (0 and 0 when the run's log is complete)."""
    served = wh.query(
        "select run_id, count(*) as n, count(distinct user_id) as users from serving.recommendations_current "
        "group by run_id"
    )
    assert len(served) == 1, served
    run, rows, users = served.iloc[0]
    logged = wh.query("select count(*) as n from ml.logged_slates where run_id = ?", [run])["n"].iloc[0]
    contexts = wh.query("select count(distinct user_id) as n from ml.slate_contexts where run_id = ?", [run])["n"].iloc[
        0
    ]
    return str(run), {"slates_missing": int(rows) - int(logged), "contexts_missing": int(users) - int(contexts)}


def _fault_rows(wh: Warehouse) -> int:
    return int(wh.query("select count(*) as n from ml.logged_slates where run_id = ?", [RUN])["n"].iloc[0])


@pytest.fixture()
def published_copy(pipeline_runs, tmp_path) -> Warehouse:
    """A private copy of the warehouse the four DAGs published into."""
    src = Warehouse.from_env()
    dst = tmp_path / "wh.duckdb"
    shutil.copy(src.path, dst)
    return Warehouse(f"duckdb:///{dst}")


def test_a_publish_killed_at_any_boundary_serves_a_version_with_its_whole_slate_log(published_copy):
    wh = published_copy
    before, complete = _served_and_logged(wh)
    assert before != RUN and complete == {"slates_missing": 0, "contexts_missing": 0}

    for boundary in ("before_switch", "mid_log", "after_log"):
        proc = _publish(wh, boundary)
        assert proc.returncode == -signal.SIGKILL, (boundary, proc.stderr[-2000:])
        assert "published" not in proc.stdout
        # killed before the commit: the old version is served, with its log, and nothing of the new run
        assert _served_and_logged(wh) == (before, complete), boundary
        assert _fault_rows(wh) == 0, boundary
        assert version_for(RUN) not in set(list_versions("recommendations", wh)["version"])

    proc = _publish(wh, "after_commit")
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    # killed after the commit: the new version is served, and its log is whole
    assert _served_and_logged(wh) == (RUN, complete)
    logged_once = _fault_rows(wh)

    # the task's retry publishes the same run again: same version, the log replaced, not doubled
    proc = _publish(wh, "none")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"published {version_for(RUN)}" in proc.stdout
    assert _served_and_logged(wh) == (RUN, complete)
    assert _fault_rows(wh) == logged_once
