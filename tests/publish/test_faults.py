"""Publishing under faults: a publisher SIGKILLed mid-load, a rerun of the same run id, and
readers polling while versions switch. PostgreSQL is the realistic serving store; DuckDB is
checked for the same guarantees within its single-writer model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from ml.publish import list_versions, publish_table, rollback
from ml.publish.tables import version_for
from ml.warehouse import Warehouse
from tests.publish.publisher import frame

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
KEY = ["user_id", "rank"]


def _current(wh: Warehouse, name: str = "recs") -> pd.DataFrame:
    return wh.query(f"select * from serving.{name}_current").sort_values(KEY, ignore_index=True)


def _same_rows(got: pd.DataFrame, want: pd.DataFrame) -> None:
    want = want.sort_values(KEY, ignore_index=True)
    assert len(got) == len(want)
    assert got[list(want.columns)].astype(str).equals(want.astype(str))


def _start_publisher(url: str, run_id: str, n_users: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.publish.publisher", url, "recs", run_id, str(n_users)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_line(proc: subprocess.Popen[str], word: str, timeout_s: float = 120.0) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(word):
            return
        if not line and proc.poll() is not None:
            raise AssertionError(f"publisher exited {proc.returncode} before {word!r}: {proc.stderr.read()[-2000:]}")
    raise AssertionError(f"publisher printed no {word!r} within {timeout_s}s")


def _copy_backend_pid(wh: Warehouse) -> int | None:
    """The server process of a ``COPY`` running into this database, if any."""
    df = wh.query(
        "select pid from pg_stat_activity where datname = current_database() and query ilike 'copy serving.%' "
        "and state = 'active'"
    )
    return int(df["pid"].iloc[0]) if len(df) else None


def _kill_midway_then_rerun(wh: Warehouse, n_users: int, wait_until_loading) -> None:
    old = publish_table(frame(50, "run-old"), "recs", "run-old", wh)
    before = _current(wh)
    proc = _start_publisher(wh.url, "run-new", n_users)
    try:
        _wait_for_line(proc, "loading")
        wait_until_loading(proc)
        assert proc.poll() is None, "the publisher finished before it could be killed: raise n_users"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    out = proc.stdout.read() if proc.stdout else ""
    assert "published" not in out
    # the killed load is invisible: same version, same rows, nothing new in the log
    versions = list_versions("recs", wh)
    assert versions.loc[versions["current"], "version"].tolist() == [old.version]
    assert version_for("run-new") not in set(versions["version"])
    assert _current(wh).equals(before)
    # a rerun of the same run id completes with exactly the rows of that run
    rerun = _start_publisher(wh.url, "run-new", n_users)
    stdout, stderr = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, stderr[-2000:]
    assert f"published {version_for('run-new')}" in stdout
    _same_rows(_current(wh), frame(n_users, "run-new"))
    versions = list_versions("recs", wh)
    assert versions["version"].tolist() == [version_for("run-new"), old.version]


@pytest.mark.integration
def test_sigkill_during_postgres_copy_leaves_current_version_and_rerun_completes(pg_warehouse):
    def wait_for_copy(proc: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + 120
        while _copy_backend_pid(pg_warehouse) is None:
            assert proc.poll() is None, f"publisher exited early: {proc.stderr.read()[-2000:] if proc.stderr else ''}"
            assert time.monotonic() < deadline, "no COPY seen in pg_stat_activity within 120s"
            time.sleep(0.02)

    _kill_midway_then_rerun(pg_warehouse, 20_000, wait_for_copy)
    # the server rolled the killed transaction back: no COPY left behind, no scratch table
    assert _copy_backend_pid(pg_warehouse) is None
    left = pg_warehouse.query("select table_name from information_schema.tables where table_name like '%__load'")
    assert left.empty


def test_sigkill_during_duckdb_load_leaves_current_version_and_rerun_completes(warehouse):
    def wait_for_file_growth(proc: subprocess.Popen[str]) -> None:
        # DuckDB writes big loads to the file before the commit makes them reachable
        start = warehouse.path.stat().st_size
        deadline = time.monotonic() + 120
        while warehouse.path.stat().st_size <= start:
            assert proc.poll() is None, f"publisher exited early: {proc.stderr.read()[-2000:] if proc.stderr else ''}"
            assert time.monotonic() < deadline, "the DuckDB file did not grow within 120s"
            time.sleep(0.02)

    _kill_midway_then_rerun(warehouse, 30_000, wait_for_file_growth)


def _poll_readers(wh: Warehouse, stop: threading.Event, seen: list[tuple[int, int, str]], errors: list[str]) -> None:
    """Read the current view in a loop, recording (rows, distinct run ids, run id)."""
    sql = "select count(*) as n, count(distinct run_id) as runs, min(run_id) as run from serving.recs_current"
    try:
        if wh.kind == "postgres":
            import psycopg

            with psycopg.connect(wh.url, autocommit=True) as con:
                while not stop.is_set():
                    n, runs, run = con.execute(sql).fetchone()
                    seen.append((int(n), int(runs), str(run)))
        else:
            import duckdb

            # same process, own connection: DuckDB shares one database instance per file
            con = duckdb.connect(str(wh.path))
            try:
                while not stop.is_set():
                    n, runs, run = con.execute(sql).fetchone()
                    seen.append((int(n), int(runs), str(run)))
            finally:
                con.close()
    except Exception as exc:
        errors.append(repr(exc))


@pytest.mark.parametrize("store", [pytest.param("postgres", marks=pytest.mark.integration), "duckdb"])
def test_a_polling_reader_sees_one_whole_version_at_a_time(store, request):
    wh: Warehouse = request.getfixturevalue("pg_warehouse" if store == "postgres" else "warehouse")
    sizes = {"run-a": 1_000, "run-b": 10_000, "run-c": 3_000}
    publish_table(frame(sizes["run-a"], "run-a"), "recs", "run-a", wh)
    stop, seen, errors = threading.Event(), [], []
    reader = threading.Thread(target=_poll_readers, args=(wh, stop, seen, errors), daemon=True)
    reader.start()
    try:
        time.sleep(0.2)
        publish_table(frame(sizes["run-b"], "run-b"), "recs", "run-b", wh)
        publish_table(frame(sizes["run-c"], "run-c"), "recs", "run-c", wh)
        publish_table(frame(sizes["run-b"], "run-b"), "recs", "run-b", wh)  # rerun: same version replaced
        rollback("recs", version_for("run-c"), wh)
        time.sleep(0.2)
    finally:
        stop.set()
        reader.join(timeout=30)
    assert not errors, errors
    whole = {(sizes[r] * 10, 1, r) for r in sizes}
    partial = [s for s in seen if s not in whole]
    assert not partial, f"readers saw partial or mixed versions: {partial[:5]}"
    assert {s[2] for s in seen} >= {"run-a", "run-c"}, "the reader did not observe the switches"
    assert len(seen) > 10
