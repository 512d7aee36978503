"""Versioned serving tables with an atomic switch.

Each publish writes ``serving.<name>__<version>`` and then, in one transaction, points the
stable view ``serving.<name>_current`` at it and records the version in
``serving.publish_log``. Readers see the old version or the new one, never a mix. The version
id derives from the run id, so re-running the same DAG run rewrites the same version with the
same rows. Only the newest ``keep`` versions (plus the current one) are kept.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from ml.warehouse import Warehouse

LOG_DDL = """name varchar, version varchar, table_name varchar, run_id varchar, rows_total bigint,
    model_version varchar, policy_version varchar, created_at timestamptz, meta varchar"""
_SAFE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass
class PublishResult:
    name: str
    version: str
    table: str
    view: str
    rows: int
    dropped_versions: list[str]


def version_for(run_id: str) -> str:
    return "v" + hashlib.sha1(run_id.encode()).hexdigest()[:12]


def _ensure(wh: Warehouse, con: Any) -> None:
    wh.ensure_schemas(con)
    wh.execute(con, f"create table if not exists serving.publish_log ({LOG_DDL})")


def publish_table(
    df: pd.DataFrame,
    name: str,
    run_id: str,
    wh: Warehouse | None = None,
    keep: int = 3,
    model_version: str = "",
    policy_version: str = "",
    meta: dict[str, Any] | None = None,
) -> PublishResult:
    """Write ``df`` as a new version of ``name`` and switch ``<name>_current`` to it atomically."""
    if not _SAFE.match(name):
        raise ValueError(f"bad table name {name!r}")
    wh = wh or Warehouse.from_env()
    version = version_for(run_id)
    table = f"serving.{name}__{version}"
    view = f"serving.{name}_current"
    with wh.connect() as con:
        _ensure(wh, con)
        # 1) load the new version under its own name (invisible to readers of the view)
        wh.begin(con)
        wh.execute(con, f"drop table if exists {table}")
        _create_from_df(wh, con, table, df)
        con.commit()
        # 2) switch the stable name in one short transaction
        wh.begin(con)
        wh.execute(con, f"create or replace view {view} as select * from {table}")
        wh.execute(con, "delete from serving.publish_log where name = ? and version = ?", [name, version])
        wh.execute(
            con,
            "insert into serving.publish_log values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                name,
                version,
                table,
                run_id,
                len(df),
                model_version,
                policy_version,
                datetime.now(UTC),
                json.dumps(meta or {}, default=str),
            ],
        )
        con.commit()
        dropped = _prune(wh, con, name, version, keep)
    return PublishResult(name, version, table, view, len(df), dropped)


def _create_from_df(wh: Warehouse, con: Any, table: str, df: pd.DataFrame) -> None:
    if wh.kind == "duckdb":
        con.register("_publish_df", df)
        try:
            con.execute(f"create table {table} as select * from _publish_df")
        finally:
            con.unregister("_publish_df")
        return
    from ml.warehouse import copy_df

    cols = ", ".join(f'"{c}" {_pg_type(df[c])}' for c in df.columns)
    wh.execute(con, f"create table {table} ({cols})")
    copy_df(con, table, df)


def _pg_type(s: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(s):
        return "boolean"
    if pd.api.types.is_integer_dtype(s):
        return "bigint"
    if pd.api.types.is_float_dtype(s):
        return "double precision"
    if pd.api.types.is_datetime64_any_dtype(s):
        return "timestamptz"
    return "text"


def _prune(wh: Warehouse, con: Any, name: str, current: str, keep: int) -> list[str]:
    log = wh.query(
        "select version, table_name from serving.publish_log where name = ? order by created_at desc",
        [name],
        con,
    )
    keep_set = set(log["version"].head(max(keep, 1))) | {current}
    dropped = []
    for _, r in log.iterrows():
        if r["version"] in keep_set:
            continue
        wh.begin(con)
        wh.execute(con, f"drop table if exists {r['table_name']}")
        wh.execute(con, "delete from serving.publish_log where name = ? and version = ?", [name, r["version"]])
        con.commit()
        dropped.append(str(r["version"]))
    return dropped


def list_versions(name: str = "recommendations", wh: Warehouse | None = None) -> pd.DataFrame:
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
    m = re.search(rf"{name}__(v[0-9a-f]+)", text or "")
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
        wh.execute(con, f"create or replace view serving.{name}_current as select * from {log['table_name'].iloc[0]}")
        con.commit()
    return to_version
