"""Read sessions that never block the warehouse's single writer.

DuckDB allows one writer process per file, and a read-only connection takes a shared lock that
also keeps the writer out. So the UI never queries the live file: it reads a **snapshot copy**
taken while the file is free. A snapshot is refreshed when the file changed (size or mtime of the
database or its WAL), at most every ``refresh_seconds`` and only once the file has been quiet for
``quiet_seconds`` (a pipeline writing right now is left alone); the copy itself runs under a
brief read-only open of the source, so it is consistent. When a writer holds the lock (or just
wrote), the last snapshot is served and the session says so (``Freshness.stale``); with no
snapshot yet the session fails with :class:`~ml.ui.errors.WarehouseUnavailable` (HTTP 503).

PostgreSQL readers use a plain connection in a ``read only`` transaction with a statement
timeout; MVCC keeps them from blocking writers.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd

from ml import config
from ml.settings import settings
from ml.ui.errors import WarehouseUnavailable
from ml.warehouse import Warehouse

log = logging.getLogger(__name__)

# schemas the UI may read (the shared warehouse contract)
UI_SCHEMAS = ("raw", "staging", "marts", "ml", "registry", "serving", "quality")
STATEMENT_TIMEOUT = "15s"
_PREFIX = "warehouse-"


@dataclass(frozen=True)
class Freshness:
    """Where a session's rows come from; sent with every JSON answer as ``source``."""

    kind: str
    read_from: str
    snapshot_at: str | None
    stale: bool
    note: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "read_from": self.read_from,
            "snapshot_at": self.snapshot_at,
            "stale": self.stale,
            "note": self.note,
        }


@dataclass(frozen=True)
class Catalog:
    """The tables and columns present in the warehouse: ``"schema.table" -> columns``."""

    columns: dict[str, tuple[str, ...]]
    types: dict[str, dict[str, str]] = field(default_factory=dict)

    def is_boolean(self, table: str, col: str) -> bool:
        return self.types.get(table, {}).get(col, "").lower() in ("boolean", "bool")

    def has(self, table: str, *cols: str) -> bool:
        present = self.columns.get(table)
        return present is not None and all(c in present for c in cols)

    def cols(self, table: str) -> tuple[str, ...]:
        return self.columns.get(table, ())

    def first(self, table: str, candidates: Sequence[str]) -> str | None:
        """The first of ``candidates`` that ``table`` has, else None."""
        present = self.cols(table)
        return next((c for c in candidates if c in present), None)


@dataclass
class ReadSession:
    """One request's read connection, the catalogue of what exists, and its freshness."""

    wh: Warehouse
    con: Any
    catalog: Catalog
    freshness: Freshness

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Run a parameterised query (``?`` placeholders on both back ends)."""
        return self.wh.query(sql, list(params) if params is not None else None, self.con)

    def has(self, table: str, *cols: str) -> bool:
        return self.catalog.has(table, *cols)


@dataclass(frozen=True)
class _Snapshot:
    path: Path
    signature: tuple[int, ...]
    taken_at: float


class _Locked(Exception):
    pass


@dataclass
class WarehouseReader:
    """Hands out :class:`ReadSession` objects for the UI (thread-safe; one per api-server worker).

    ``snapshot_dir`` (DuckDB only) defaults to ``<state dir>/ui-snapshots``; ``keep`` snapshots
    are kept on disk (a session still reading an older one keeps its open file on POSIX).
    """

    wh: Warehouse
    snapshot_dir: Path | None = None
    refresh_seconds: float = 5.0
    quiet_seconds: float = 2.0
    keep: int = 2
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def from_env(cls) -> WarehouseReader:
        """Settings from ``INTERESTFLOW_UI_REFRESH_SECONDS`` (5) and ``INTERESTFLOW_UI_QUIET_SECONDS`` (2)."""
        s = settings()
        return cls(Warehouse.from_env(), refresh_seconds=s.ui_refresh_seconds, quiet_seconds=s.ui_quiet_seconds)

    @property
    def directory(self) -> Path:
        return self.snapshot_dir or config.state_dir() / "ui-snapshots"

    @contextmanager
    def session(self) -> Iterator[ReadSession]:
        if self.wh.kind == "postgres":
            with self._postgres_session() as s:
                yield s
        else:
            with self._duckdb_session() as s:
                yield s

    # --- PostgreSQL -------------------------------------------------------------------------
    @contextmanager
    def _postgres_session(self) -> Iterator[ReadSession]:
        import psycopg

        try:
            with self.wh.connect() as con:
                self.wh.execute(con, "set transaction read only")
                self.wh.execute(con, f"set local statement_timeout = '{STATEMENT_TIMEOUT}'")
                fresh = Freshness("postgres", "live", None, False, "live PostgreSQL, read-only transaction")
                yield ReadSession(self.wh, con, _catalog(self.wh, con), fresh)
        except psycopg.OperationalError as exc:
            u = urlparse(self.wh.url)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise WarehouseUnavailable(
                f"the PostgreSQL warehouse at {u.hostname}:{u.port or 5432}{u.path} cannot be read: {first}"
            ) from exc

    # --- DuckDB -----------------------------------------------------------------------------
    @contextmanager
    def _duckdb_session(self) -> Iterator[ReadSession]:
        import duckdb

        snap, fresh = self.snapshot()
        try:
            con = duckdb.connect(str(snap.path), read_only=True)
        except duckdb.IOException:
            # another api-server worker pruned this snapshot between our pick and our open
            snap, fresh = self.snapshot()
            con = duckdb.connect(str(snap.path), read_only=True)
        try:
            wh = Warehouse(f"duckdb://{snap.path.resolve().as_posix()}")
            yield ReadSession(wh, con, _catalog(wh, con), fresh)
        finally:
            con.close()

    def snapshot(self) -> tuple[_Snapshot, Freshness]:
        """The snapshot to read (taking a new one when the source changed and is free)."""
        src = self.wh.path
        if not src.exists():
            raise WarehouseUnavailable(f"no warehouse at {src} yet: run the pipeline first (make demo)")
        with self._lock:
            latest = self._latest()
            now = time.time()
            signature = _signature(src)
            if latest is not None and (latest.signature == signature or now - latest.taken_at < self.refresh_seconds):
                return latest, _fresh(latest, stale=False)
            if latest is not None and now - max(signature[0::2]) / 1e9 < self.quiet_seconds:
                # written moments ago: a writer is probably still at work, do not compete for the lock
                return latest, _fresh(latest, stale=True)
            try:
                snap = self._copy(src)
            except _Locked:
                if latest is None:
                    raise WarehouseUnavailable(
                        "the warehouse is being written right now and no snapshot exists yet; retry in a few seconds"
                    ) from None
                return latest, _fresh(latest, stale=True)
            self._prune()
            return snap, _fresh(snap, stale=False)

    def _latest(self) -> _Snapshot | None:
        best: _Snapshot | None = None
        if not self.directory.exists():
            return None
        for meta in self.directory.glob(f"{_PREFIX}*.json"):
            try:
                d = json.loads(meta.read_text())
            except (OSError, ValueError):
                continue
            path = meta.with_suffix(".duckdb")
            if path.exists() and (best is None or d["taken_at"] > best.taken_at):
                best = _Snapshot(path, tuple(d["signature"]), float(d["taken_at"]))
        return best

    def _copy(self, src: Path) -> _Snapshot:
        import duckdb

        try:
            guard = duckdb.connect(str(src), read_only=True)
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            text = str(exc).lower()
            if "lock" in text or "different configuration" in text:
                raise _Locked from exc
            raise
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            signature = _signature(src)
            name = f"{_PREFIX}{time.time_ns()}-{os.getpid()}-{threading.get_ident()}"
            tmp = self.directory / f".{name}.tmp"
            shutil.copyfile(src, tmp)
            wal = src.with_name(src.name + ".wal")
            if wal.exists():
                shutil.copyfile(wal, self.directory / f"{name}.duckdb.wal")
            target = self.directory / f"{name}.duckdb"
            os.replace(tmp, target)
            taken_at = time.time()
            meta = self.directory / f"{name}.json"
            meta.write_text(json.dumps({"signature": list(signature), "taken_at": taken_at, "source": str(src)}))
        finally:
            guard.close()
        log.info("ui snapshot of %s taken: %s", src, target.name)
        return _Snapshot(target, signature, taken_at)

    def _prune(self) -> None:
        metas = []
        for meta in self.directory.glob(f"{_PREFIX}*.json"):
            try:
                metas.append((float(json.loads(meta.read_text())["taken_at"]), meta))
            except (OSError, ValueError, KeyError):
                continue
        metas.sort(reverse=True)
        for _, meta in metas[max(self.keep, 1) :]:
            for p in (meta, meta.with_suffix(".duckdb"), meta.with_suffix(".duckdb.wal")):
                p.unlink(missing_ok=True)
        cutoff = time.time() - 600
        for tmp in self.directory.glob(f".{_PREFIX}*.tmp"):
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink(missing_ok=True)


def _signature(src: Path) -> tuple[int, ...]:
    """(mtime ns, size) of the database file and of its WAL (zeros when absent)."""
    out: list[int] = []
    for p in (src, src.with_name(src.name + ".wal")):
        try:
            st = p.stat()
            out += [st.st_mtime_ns, st.st_size]
        except FileNotFoundError:
            out += [0, 0]
    return tuple(out)


def _fresh(snap: _Snapshot, stale: bool) -> Freshness:
    at = datetime.fromtimestamp(snap.taken_at, UTC).isoformat(timespec="seconds")
    if stale:
        note = f"the warehouse is being written right now; showing the snapshot taken at {at}"
    else:
        note = f"DuckDB snapshot taken at {at}"
    return Freshness("duckdb", "snapshot", at, stale, note)


def _catalog(wh: Warehouse, con: Any) -> Catalog:
    marks = ", ".join("?" for _ in UI_SCHEMAS)
    df = wh.query(
        "select table_schema, table_name, column_name, data_type from information_schema.columns "
        f"where table_schema in ({marks}) order by table_schema, table_name, ordinal_position",
        list(UI_SCHEMAS),
        con,
    )
    cols: dict[str, list[str]] = {}
    types: dict[str, dict[str, str]] = {}
    for s, t, c, d in zip(df["table_schema"], df["table_name"], df["column_name"], df["data_type"], strict=True):
        cols.setdefault(f"{s}.{t}", []).append(str(c))
        types.setdefault(f"{s}.{t}", {})[str(c)] = str(d)
    return Catalog({k: tuple(v) for k, v in cols.items()}, types)
