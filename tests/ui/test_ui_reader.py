"""The UI's DuckDB reads go through snapshots, so they never block the single writer, and a
locked warehouse still answers from the last snapshot (saying so)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

# a second process that opens the warehouse for writing, inserts a row and holds the lock until told
HOLD_LOCK = (
    "import duckdb, sys; c = duckdb.connect(sys.argv[1]); c.execute('insert into t values (?)', [int(sys.argv[2])]); "
    "print('locked', flush=True); sys.stdin.readline(); c.close()"
)
WRITE_ONCE = "import duckdb, sys; c = duckdb.connect(sys.argv[1]); c.execute('insert into t values (7)'); c.close()"


@pytest.fixture()
def source(tmp_path: Path):
    import duckdb

    from ml.warehouse import Warehouse

    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create table t (x integer)")
    con.execute("insert into t values (1), (2)")
    con.close()
    return Warehouse(f"duckdb:///{path}")


@pytest.fixture()
def reader(source, tmp_path: Path):
    from ml.ui.reader import WarehouseReader

    return WarehouseReader(source, snapshot_dir=tmp_path / "snaps", refresh_seconds=0.0, quiet_seconds=0.0)


class _Holder:
    def __init__(self, path: Path, value: int):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(path), str(value)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "locked"

    def release(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        assert self.proc.wait(timeout=60) == 0


@pytest.fixture()
def hold_lock(source) -> Iterator[type[_Holder]]:
    holders: list[_Holder] = []

    def start(value: int) -> _Holder:
        h = _Holder(source.path, value)
        holders.append(h)
        return h

    yield start  # type: ignore[misc]
    for h in holders:
        if h.proc.poll() is None:
            h.proc.kill()
            h.proc.wait(timeout=30)


def _values(rs) -> list[int]:
    return sorted(int(v) for v in rs.query("select x from t")["x"])


def test_reads_come_from_a_snapshot_copy_not_the_live_file(reader, source):
    with reader.session() as rs:
        assert _values(rs) == [1, 2]
        assert rs.freshness.read_from == "snapshot" and rs.freshness.stale is False
        assert not rs.wh.path.samefile(source.path)
        assert rs.wh.path.parent.samefile(reader.directory)


def test_an_open_read_session_does_not_block_a_writer_process(reader, source):
    with reader.session() as rs:
        proc = subprocess.run([sys.executable, "-c", WRITE_ONCE, str(source.path)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert _values(rs) == [1, 2]  # the session keeps its consistent snapshot
    with reader.session() as rs:
        assert _values(rs) == [1, 2, 7]  # the next session sees the write


def test_a_locked_warehouse_serves_the_last_snapshot_and_says_it_is_stale(reader, hold_lock):
    with reader.session() as rs:
        first_at = rs.freshness.snapshot_at
    holder = hold_lock(3)
    with reader.session() as rs:
        assert _values(rs) == [1, 2]
        assert rs.freshness.stale is True
        assert rs.freshness.snapshot_at == first_at
        assert "being written" in rs.freshness.note
    holder.release()
    with reader.session() as rs:
        assert _values(rs) == [1, 2, 3]
        assert rs.freshness.stale is False


def test_a_locked_warehouse_without_any_snapshot_is_unavailable_not_a_crash(reader, hold_lock):
    from ml.ui.errors import WarehouseUnavailable

    hold_lock(4)
    with pytest.raises(WarehouseUnavailable, match="retry"), reader.session():
        pass


def test_a_missing_warehouse_file_says_to_run_the_pipeline(tmp_path: Path):
    from ml.ui.errors import WarehouseUnavailable
    from ml.ui.reader import WarehouseReader
    from ml.warehouse import Warehouse

    r = WarehouseReader(Warehouse(f"duckdb:///{tmp_path / 'none.duckdb'}"), snapshot_dir=tmp_path / "s")
    with pytest.raises(WarehouseUnavailable, match="make demo"), r.session():
        pass


def test_unchanged_source_reuses_its_snapshot_and_old_snapshots_are_pruned(reader, source):
    with reader.session() as rs:
        first = rs.wh.path
    with reader.session() as rs:
        assert rs.wh.path == first  # nothing changed: no new copy
    for value in range(10, 14):
        subprocess.run([sys.executable, "-c", WRITE_ONCE.replace("7", str(value)), str(source.path)], check=True)
        with reader.session() as rs:
            assert value in _values(rs)
    kept = sorted(reader.directory.glob("warehouse-*.duckdb"))
    assert 1 <= len(kept) <= reader.keep
    assert len(list(reader.directory.glob("warehouse-*.json"))) == len(kept)


def test_a_file_written_moments_ago_is_left_alone_until_it_is_quiet(reader, source):
    with reader.session() as rs:
        first = rs.wh.path
    subprocess.run([sys.executable, "-c", WRITE_ONCE, str(source.path)], check=True)
    reader.quiet_seconds = 3600.0
    with reader.session() as rs:
        assert rs.wh.path == first and rs.freshness.stale is True and _values(rs) == [1, 2]
    reader.quiet_seconds = 0.0
    with reader.session() as rs:
        assert rs.wh.path != first and rs.freshness.stale is False and _values(rs) == [1, 2, 7]


def test_catalog_lists_tables_and_columns_of_the_contract_schemas(tmp_path: Path):
    import duckdb

    from ml.ui.reader import WarehouseReader
    from ml.warehouse import Warehouse

    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema serving")
    con.execute("create table serving.recommendations__v1 (user_id varchar, rank integer)")
    con.execute("create view serving.recommendations_current as select * from serving.recommendations__v1")
    con.execute("create table main.elsewhere (a integer)")
    con.close()
    with WarehouseReader(Warehouse(f"duckdb:///{path}"), snapshot_dir=tmp_path / "s").session() as rs:
        assert rs.has("serving.recommendations_current", "user_id", "rank")
        assert not rs.has("serving.recommendations_current", "propensity")
        assert not rs.has("main.elsewhere")
        assert rs.catalog.first("serving.recommendations_current", ["score", "rank"]) == "rank"
