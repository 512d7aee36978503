"""Versioned serving tables with an atomic switch.

A publish of ``df`` as ``<name>`` for a run id is **one transaction**:

1. load the rows into a scratch table ``serving.<name>__<version>__load`` (``COPY`` on
   PostgreSQL, an Arrow scan on DuckDB) and index it by user (PostgreSQL);
2. rename it to ``serving.<name>__<version>`` (a re-run of the same run id first moves the
   earlier copy of that version aside and drops it);
3. point the stable view ``serving.<name>_current`` at it and record the version (run id,
   model and policy versions, row count, created_at) in ``serving.publish_log``;
4. write what must appear with the version (``in_transaction``: the slate log of published
   recommendations), then commit.

:func:`publish_staged` is the same switch for rows already in the scratch table (the shards of
a PostgreSQL publish run ``COPY`` their parts there, :class:`ml.publish.shards.TableParts`):
step 1 only drops the shard column and builds the index.

Readers of the view see the old version or the new one, never a mix: until the commit nothing
of the new version is visible, and a process killed at any point (``SIGKILL`` included) leaves
the transaction uncommitted, which both databases roll back. On PostgreSQL the switch holds
the view's lock only for the final statements, so readers wait milliseconds, not the load.

The version id derives from the run id, so re-running a DAG run rewrites the same version with
the same rows. Afterwards, in separate short transactions, only the newest ``keep`` versions
(plus the one the view points at) are kept. Concurrent publishes of one name are serialised
(an advisory lock on PostgreSQL; on DuckDB one process holds the file, a lock serialises its
threads).

DuckDB note: a DuckDB file has one writer *process*; other processes cannot open it (not even
read-only) while a publish runs, so cross-process readers wait for the writer to close (the
adapter retries for up to a minute). Threads of the writing process read through their own
connections and see the old version until the commit (DuckDB's MVCC).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pyarrow as pa

from ml.publish.copy import copy_arrow, create_table_sql, to_arrow
from ml.warehouse import DDL_LOCK, Warehouse

LOG_DDL = """name varchar, version varchar, table_name varchar, run_id varchar, rows_total bigint,
    model_version varchar, policy_version varchar, created_at timestamptz, meta varchar"""
_SAFE = re.compile(r"^[a-z][a-z0-9_]*$")
# PostgreSQL identifiers have at most 63 bytes: <name>__v<12 hex>__load must fit
MAX_NAME = 40
_DUCKDB_LOCKS: dict[str, threading.Lock] = {}
_DUCKDB_LOCKS_GUARD = threading.Lock()


@dataclass
class PublishResult:
    name: str
    version: str
    table: str
    view: str
    rows: int
    dropped_versions: list[str]
    seconds: float = 0.0


def version_for(run_id: str) -> str:
    """``v`` + 12 hex digits of the run id's SHA-1: the same run id always gives the same version."""
    return "v" + hashlib.sha1(run_id.encode()).hexdigest()[:12]


def _ensure(wh: Warehouse, con: Any) -> None:
    """Create the schemas and the publish log when missing (own transaction, under the DDL lock
    that serialises concurrent creators on PostgreSQL). A read when they exist: no write
    transaction, no extra commit."""
    if wh.table_exists(con, "serving", "publish_log"):
        return
    wh.begin(con)
    try:
        wh.lock(con, DDL_LOCK)
        wh.ensure_schemas(con)
        wh.execute(con, f"create table if not exists serving.publish_log ({LOG_DDL})")
        wh.commit(con)
    except BaseException:
        _rollback_quietly(wh, con)
        raise


class _Serialised:
    """Serialise publishes of one name: a transaction-scoped advisory lock on PostgreSQL,
    a per-file thread lock on DuckDB (one process owns a DuckDB file)."""

    def __init__(self, wh: Warehouse, con: Any, name: str):
        self.wh, self.con, self.name = wh, con, name
        self.lock: threading.Lock | None = None

    def __enter__(self) -> _Serialised:
        if self.wh.kind == "postgres":
            self.wh.lock(self.con, f"interestflow.publish:{self.name}")
        else:
            with _DUCKDB_LOCKS_GUARD:
                self.lock = _DUCKDB_LOCKS.setdefault(str(self.wh.path), threading.Lock())
            self.lock.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.lock is not None:
            self.lock.release()


def publish_table(
    df: pd.DataFrame,
    name: str,
    run_id: str,
    wh: Warehouse | None = None,
    keep: int = 3,
    model_version: str = "",
    policy_version: str = "",
    meta: dict[str, Any] | None = None,
    index_columns: Sequence[str] = ("user_id",),
    in_transaction: Callable[[Any], None] | None = None,
) -> PublishResult:
    """Write ``df`` as the version of ``name`` for ``run_id`` and switch ``serving.<name>_current``
    to it in the same transaction. ``index_columns`` (those present in ``df``) get a btree index
    on PostgreSQL (serving looks rows up by user). ``in_transaction(con)`` writes what must
    become visible with the version and never without it (the slate log of published
    recommendations): it runs on the publishing connection after the switch, before the commit.
    Returns what was published and which old versions were dropped."""
    data = to_arrow(df)
    wh = wh or Warehouse.from_env()

    def load(con: Any, scratch: str) -> int:
        wh.execute(con, f"drop table if exists {scratch}")
        _load(wh, con, scratch, data, [c for c in index_columns if c in data.column_names])
        return data.num_rows

    version = _Version(name, run_id, model_version, policy_version, meta or {})
    return _publish(wh, version, keep, load, in_transaction)


def staged_table(name: str, run_id: str) -> str:
    """The table :func:`publish_staged` publishes: ``serving.<name>__<version>__load``."""
    _check_name(name)
    return f"serving.{name}__{version_for(run_id)}__load"


def publish_staged(
    name: str,
    run_id: str,
    rows: int,
    wh: Warehouse,
    keep: int = 3,
    model_version: str = "",
    policy_version: str = "",
    meta: dict[str, Any] | None = None,
    drop_columns: Sequence[str] = (),
    index_columns: Sequence[str] = ("user_id",),
    in_transaction: Callable[[Any], None] | None = None,
) -> PublishResult:
    """PostgreSQL: publish the ``rows`` rows already loaded into :func:`staged_table` (each
    shard of a publish run COPYs its part there) as the version of ``name`` for ``run_id``, like
    :func:`publish_table` but without loading anything: the switch drops ``drop_columns`` (a
    catalogue change on PostgreSQL, no rewrite), indexes ``index_columns`` and renames."""
    if wh.kind != "postgres":
        raise ValueError(f"publish_staged needs a PostgreSQL warehouse, not {wh.kind}")

    def load(con: Any, scratch: str) -> int:
        for column in drop_columns:
            wh.execute(con, f'alter table {scratch} drop column "{column}"')
        if index_columns:
            cols = ", ".join(f'"{c}"' for c in index_columns)
            wh.execute(con, f"create index on {scratch} ({cols})")
        return rows

    version = _Version(name, run_id, model_version, policy_version, meta or {})
    return _publish(wh, version, keep, load, in_transaction)


@dataclass(frozen=True)
class _Version:
    """What the publish log records of a version besides its table and row count."""

    name: str
    run_id: str
    model_version: str
    policy_version: str
    meta: dict[str, Any]


def _check_name(name: str) -> None:
    if not _SAFE.match(name) or len(name) > MAX_NAME:
        raise ValueError(f"bad table name {name!r}: up to {MAX_NAME} lower-case letters, digits and _")


def _publish(
    wh: Warehouse,
    v: _Version,
    keep: int,
    load: Callable[[Any, str], int],
    in_transaction: Callable[[Any], None] | None,
) -> PublishResult:
    """The switch both publishes share: ``load(con, scratch)`` fills the scratch table and returns
    its row count, inside the transaction that renames it, points the view and logs the version."""
    _check_name(v.name)
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    t0 = time.perf_counter()
    version = version_for(v.run_id)
    base = f"{v.name}__{version}"
    table, scratch, view = f"serving.{base}", f"serving.{base}__load", f"serving.{v.name}_current"
    with wh.connect() as con:
        _ensure(wh, con)
        wh.begin(con)
        try:
            with _Serialised(wh, con, v.name):
                rows = load(con, scratch)
                _lock_view(wh, con, view)
                if wh.table_exists(con, "serving", base):
                    _replace_same_version(wh, con, scratch, base, view)
                else:
                    wh.execute(con, f"alter table {scratch} rename to {base}")
                _point_view(wh, con, view, table)
                wh.execute(con, "delete from serving.publish_log where name = ? and version = ?", [v.name, version])
                log_meta = {**v.meta, "load_seconds": round(time.perf_counter() - t0, 3)}
                wh.execute(
                    con,
                    "insert into serving.publish_log values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        v.name,
                        version,
                        table,
                        v.run_id,
                        rows,
                        v.model_version,
                        v.policy_version,
                        datetime.now(UTC),
                        json.dumps(log_meta, default=str),
                    ],
                )
                if in_transaction is not None:
                    in_transaction(con)
                wh.commit(con)
        except BaseException:
            _rollback_quietly(wh, con)
            raise
        dropped = _prune(wh, con, v.name, keep)
    return PublishResult(v.name, version, table, view, rows, dropped, round(time.perf_counter() - t0, 3))


def _load(wh: Warehouse, con: Any, scratch: str, data: pa.Table, index_columns: list[str]) -> None:
    if wh.kind == "duckdb":
        con.register("_publish_arrow", data)
        try:
            con.execute(f"create table {scratch} as select * from _publish_arrow")
        finally:
            con.unregister("_publish_arrow")
        return
    wh.execute(con, create_table_sql(scratch, data.schema))
    copy_arrow(con, scratch, data)
    if index_columns:
        cols = ", ".join(f'"{c}"' for c in index_columns)
        wh.execute(con, f"create index on {scratch} ({cols})")
    # no ANALYZE here (it would add ~10 % to the publish): autovacuum analyses a new table of
    # this size within a minute, and lookups by the indexed user_id plan well without stats


def _lock_view(wh: Warehouse, con: Any, view: str) -> None:
    """PostgreSQL: take the view (and, recursively, the table behind it) exclusively before the
    switch, in the order readers lock them, so a reader and the switch cannot deadlock; readers
    queue for the few milliseconds until the commit."""
    if wh.kind != "postgres":
        return
    exists = wh.query("select to_regclass(?) is not null as present", [view], con)
    if bool(exists["present"].iloc[0]):
        wh.execute(con, f"lock table {view} in access exclusive mode")


def _replace_same_version(wh: Warehouse, con: Any, scratch: str, base: str, view: str) -> None:
    """A re-run of the same run id: swap the freshly loaded table in under the version's name."""
    if wh.kind == "postgres":
        # the view references the table by identity: it follows the rename to __old, so it is
        # pointed at the new table before __old is dropped
        wh.execute(con, f"drop table if exists serving.{base}__old")
        wh.execute(con, f"alter table serving.{base} rename to {base}__old")
        wh.execute(con, f"alter table {scratch} rename to {base}")
        _point_view(wh, con, view, f"serving.{base}")
        wh.execute(con, f"drop table serving.{base}__old")
    else:
        # DuckDB views are bound by name at query time: drop and rename inside the transaction
        wh.execute(con, f"drop table serving.{base}")
        wh.execute(con, f"alter table {scratch} rename to {base}")


def _point_view(wh: Warehouse, con: Any, view: str, table: str) -> None:
    """``create or replace view``; on PostgreSQL, when the columns changed between versions
    (which ``create or replace`` refuses), drop and recreate the view in the same transaction."""
    if wh.kind == "duckdb":
        wh.execute(con, f"create or replace view {view} as select * from {table}")
        return
    import psycopg

    wh.execute(con, "savepoint point_view")
    try:
        wh.execute(con, f"create or replace view {view} as select * from {table}")
    except psycopg.Error:
        wh.execute(con, "rollback to savepoint point_view")
        try:
            wh.execute(con, f"drop view if exists {view}")
        except psycopg.errors.DependentObjectsStillExist as exc:
            raise RuntimeError(
                f"{view}: the new version's columns differ from the current one and other views depend on "
                f"{view}; drop or update them first ({exc})"
            ) from exc
        wh.execute(con, f"create view {view} as select * from {table}")
    wh.execute(con, "release savepoint point_view")


def _rollback_quietly(wh: Warehouse, con: Any) -> None:
    """Roll back if a transaction is open (DuckDB raises when none is)."""
    with suppress(Exception):
        wh.rollback(con)


def _prune(wh: Warehouse, con: Any, name: str, keep: int) -> list[str]:
    """Drop versions beyond the newest ``keep`` (never the one the view points at)."""
    log = wh.query(
        "select version, table_name from serving.publish_log where name = ? order by created_at desc",
        [name],
        con,
    )
    current = current_version(wh, con, name)
    keep_set = set(log["version"].head(max(keep, 1))) | ({current} if current else set())
    dropped = []
    for r in log.itertuples():
        if r.version in keep_set:
            continue
        wh.begin(con)
        try:
            with _Serialised(wh, con, name):
                # re-check under the lock: a rollback may have pointed the view here meanwhile
                if current_version(wh, con, name) == r.version:
                    _rollback_quietly(wh, con)
                    continue
                wh.execute(con, f"drop table if exists {r.table_name}")
                wh.execute(con, "delete from serving.publish_log where name = ? and version = ?", [name, r.version])
                wh.commit(con)
        except BaseException:
            _rollback_quietly(wh, con)
            raise
        dropped.append(str(r.version))
    return dropped


def prune(name: str = "recommendations", keep: int = 3, wh: Warehouse | None = None) -> list[str]:
    """Drop all but the newest ``keep`` versions of ``name`` (and the current one); returns them."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    wh = wh or Warehouse.from_env()
    with wh.connect() as con:
        _ensure(wh, con)
        return _prune(wh, con, name, keep)


def list_versions(name: str = "recommendations", wh: Warehouse | None = None) -> pd.DataFrame:
    """Kept versions of ``name``, newest first, with a ``current`` flag."""
    wh = wh or Warehouse.from_env()
    with wh.connect() as con:
        _ensure(wh, con)
        log = wh.query(
            "select version, table_name, run_id, rows_total, model_version, policy_version, created_at "
            "from serving.publish_log where name = ? order by created_at desc",
            [name],
            con,
        )
        cur = current_version(wh, con, name)
    log["current"] = log["version"] == cur
    return log


def current_version(wh: Warehouse, con: Any, name: str) -> str | None:
    """The version the ``<name>_current`` view points at, read from the view definition."""
    if wh.kind == "duckdb":
        df = wh.query(
            "select sql from duckdb_views() where schema_name = 'serving' and view_name = ?",
            [f"{name}_current"],
            con,
        )
        text = df["sql"].iloc[0] if len(df) else ""
    else:
        df = wh.query(
            "select definition from pg_views where schemaname = 'serving' and viewname = ?",
            [f"{name}_current"],
            con,
        )
        text = df["definition"].iloc[0] if len(df) else ""
    m = re.search(rf"{name}__(v[0-9a-f]+)\b", text or "")
    return m.group(1) if m else None


def rollback(name: str, to_version: str, wh: Warehouse | None = None) -> str:
    """Point ``<name>_current`` back at a kept version, atomically."""
    wh = wh or Warehouse.from_env()
    with wh.connect() as con:
        _ensure(wh, con)
        log = wh.query(
            "select table_name from serving.publish_log where name = ? and version = ?", [name, to_version], con
        )
        if log.empty:
            raise KeyError(f"{name}: no kept version {to_version!r} (see `python -m ml publish list`)")
        wh.begin(con)
        try:
            with _Serialised(wh, con, name):
                _point_view(wh, con, f"serving.{name}_current", str(log["table_name"].iloc[0]))
                wh.commit(con)
        except BaseException:
            _rollback_quietly(wh, con)
            raise
    return to_version
