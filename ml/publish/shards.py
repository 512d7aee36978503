"""Users split into shards by a stable hash, and the parts the shards of a publish run write.

A shard of a publish run is a plain single-threaded job over its users; the orchestrator runs
the shards as mapped tasks, side by side on as many workers as there are. Where a shard's part
goes depends on the warehouse:

* **DuckDB** (one writer process per file): :class:`FolderParts`. Each shard writes its rows as
  Parquet under the state folder (``publish/<run>/shard-<i>-of-<n>/``); the switch reads every
  part and loads them in one statement. A retried shard replaces its part whole (written beside
  it, then renamed), so a part is never half there and never doubled. Parts of runs that never
  reached their switch are swept by the next plan once older than :data:`STALE_PARTS_HOURS`.
* **PostgreSQL**: :class:`TableParts`. Each shard ``COPY``s its rows straight into the run's
  staged tables (the version table-to-be and its slate log), tagged with its shard number, and
  records its part in ``serving.publish_parts``, in one transaction: a killed shard leaves
  nothing, a retried one deletes its earlier rows first. The switch then only indexes, renames
  and points the view (:func:`ml.publish.tables.publish_staged`). Nothing is read back into
  Python and the workers need no shared folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ml.publish.copy import copy_arrow, create_table_sql, to_arrow
from ml.publish.tables import _rollback_quietly
from ml.warehouse import DDL_LOCK, Warehouse

# a publish run takes minutes; parts this old belong to a run that failed or was abandoned
STALE_PARTS_HOURS = 48.0
# the column of a staged table that names the shard a row came from (dropped by the switch)
SHARD_COLUMN = "_shard"
PARTS_TABLE = "serving.publish_parts"
# every user of the shop (the users batch and anyone with an event), one row each: a shard's
# users are this table's ids whose hash names the shard
USERS_TABLE = "marts.user_features"
PARTS_DDL = """name varchar, version varchar, shard integer, shards integer, tables varchar, meta varchar,
    written_at timestamptz"""


class MissingPartError(RuntimeError):
    """The switch found a shard that has written no part (its task has not run or not finished)."""


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based): the users whose :func:`shard_of` is ``index``."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"bad shard {self.index} of {self.count}: need 0 <= index < count, count >= 1")

    @property
    def whole(self) -> bool:
        """True when this shard holds every user."""
        return self.count == 1

    @property
    def name(self) -> str:
        return f"shard-{self.index:03d}-of-{self.count:03d}"

    def hashed(self, wh: Warehouse, column: str = "user_id") -> str:
        """A SQL condition true for the user ids ``column`` of this shard: :func:`shard_of`
        computed by the warehouse, once per row (PostgreSQL: about 0.6 µs a row)."""
        return f"mod({wh.hash32(column)}, {self.count}) = {self.index}"  # (no % : a placeholder to psycopg)

    def where(self, wh: Warehouse, column: str = "user_id") -> str | None:
        """A SQL condition that keeps this shard's rows of a table by their user id ``column``;
        None for the whole shop. The ids are hashed once each, in :data:`USERS_TABLE` (every
        user of the shop), not once per row of a table of millions of interactions."""
        if self.whole:
            return None
        return f"{column} in (select user_id from {USERS_TABLE} where {self.hashed(wh)})"

    def holds(self, user_ids: pd.Series | np.ndarray) -> np.ndarray:
        """Which of ``user_ids`` are this shard's users (:func:`shard_of`, each distinct id hashed
        once), as a boolean array; all True for the whole shop."""
        if self.whole:
            return np.ones(len(user_ids), dtype=bool)
        codes, uniques = pd.factorize(user_ids)
        mine = np.append(shard_of(uniques, self.count) == self.index, False)  # (code -1: a missing id)
        return mine[codes]


def user_hash(user_id: str) -> int:
    """The first 32 bits of the MD5 of the id's UTF-8 bytes: stable in every process, on every
    machine, and computable by the warehouse (:meth:`ml.warehouse.Warehouse.hash32`)."""
    return int(hashlib.md5(user_id.encode(), usedforsecurity=False).hexdigest()[:8], 16)


def shard_of(user_ids: Sequence[str] | np.ndarray, count: int) -> np.ndarray:
    """Each user's shard: :func:`user_hash` of the id modulo ``count``."""
    return np.fromiter((user_hash(str(u)) % count for u in user_ids), dtype=np.int64, count=len(user_ids))


def run_folder(root: Path, run_id: str) -> Path:
    """``root/publish/<run>``: the run id made safe for a folder name, plus a short digest of it
    so that two run ids never share a folder."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)[:80]
    return root / "publish" / f"{safe}-{hashlib.sha1(run_id.encode()).hexdigest()[:8]}"


def write_part(folder: Path, shard: Shard, frames: dict[str, pd.DataFrame], meta: dict[str, Any]) -> Path:
    """Write shard ``shard``'s ``frames`` (one Parquet file each) and ``meta`` (JSON) as its part
    of ``folder``, replacing an earlier part of the same shard whole. Returns the part's folder."""
    final = folder / shard.name
    tmp = folder / f".{shard.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, df in frames.items():
        df.to_parquet(tmp / f"{name}.parquet", index=False)
    (tmp / "meta.json").write_text(json.dumps(meta, default=str, sort_keys=True))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def read_parts(folder: Path, count: int, names: Sequence[str]) -> tuple[dict[str, pd.DataFrame], list[dict[str, Any]]]:
    """Every shard's part of ``folder``: each frame name's parts concatenated in shard order, and
    the shards' metas. An error naming the shard when a part is missing."""
    frames: dict[str, list[pd.DataFrame]] = {n: [] for n in names}
    metas: list[dict[str, Any]] = []
    for index in range(count):
        part = folder / Shard(index, count).name
        if not (part / "meta.json").is_file():
            raise MissingPartError(f"{part}: shard {index} of {count} has written no part (run its task first)")
        metas.append(json.loads((part / "meta.json").read_text()))
        for n in names:
            frames[n].append(pd.read_parquet(part / f"{n}.parquet"))
    return {n: pd.concat(parts, ignore_index=True) for n, parts in frames.items()}, metas


def clear_parts(folder: Path) -> None:
    """Remove a run's parts (after its version is published)."""
    shutil.rmtree(folder, ignore_errors=True)


def sweep_stale_parts(root: Path, older_than_hours: float = STALE_PARTS_HOURS, now: float | None = None) -> list[Path]:
    """Remove the run folders under ``root/publish`` last written more than ``older_than_hours``
    ago (the parts of runs that never switched); returns what was removed."""
    publish = root / "publish"
    if not publish.is_dir():
        return []
    limit = (time.time() if now is None else now) - older_than_hours * 3600.0
    removed = []
    for folder in sorted(publish.iterdir()):
        if not folder.is_dir():
            continue
        newest = max((p.stat().st_mtime for p in folder.rglob("*")), default=folder.stat().st_mtime)
        if max(newest, folder.stat().st_mtime) < limit:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


@dataclass(frozen=True)
class FolderParts:
    """A run's parts as Parquet folders under ``folder`` (DuckDB; see the module's docstring)."""

    folder: Path

    def write(self, shard: Shard, frames: dict[str, pd.DataFrame], meta: dict[str, Any]) -> str:
        return str(write_part(self.folder, shard, frames, meta))

    def metas(self, count: int) -> list[dict[str, Any]]:
        return read_parts(self.folder, count, [])[1]

    def frames(self, count: int, names: Sequence[str]) -> dict[str, pd.DataFrame]:
        return read_parts(self.folder, count, names)[0]

    def clear(self) -> None:
        clear_parts(self.folder)

    def sweep(self) -> list[str]:
        return [p.name for p in sweep_stale_parts(self.folder.parent.parent)]


def _lz4_toast(wh: Warehouse, con: Any) -> None:
    """Compress the large values this transaction writes with lz4 where the server has it, not
    PostgreSQL's default pglz. A slate context is a few KB of JSON, stored compressed out of
    line; on the large shop pglz took ~13 s of a 120k-user part's ~22 s of ``COPY``, and on
    40k contexts of 5.6 KB lz4 wrote in a third of the time at the same size. A no-op on a
    server built without lz4 (its setting then does not offer it)."""
    if lz4_offered(wh, con):
        wh.execute(con, "set local default_toast_compression = 'lz4'")


def lz4_offered(wh: Warehouse, con: Any = None) -> bool:
    """Whether the PostgreSQL server can compress with lz4 (built with it)."""
    offered = wh.query(
        "select count(*) as n from pg_settings where name = 'default_toast_compression' and 'lz4' = any(enumvals)",
        None,
        con,
    )
    return int(offered["n"].iloc[0]) > 0


@dataclass(frozen=True)
class TableParts:
    """A run's parts as rows of staged PostgreSQL tables (see the module's docstring).

    ``tables``: frame name -> the staged table its rows are copied into; ``like``: frame name ->
    a table whose columns a staged table copies (the others take the columns of the first
    shard's frame); ``name``/``version``: the published table and version the run writes."""

    wh: Warehouse
    name: str
    version: str
    tables: dict[str, str]
    like: dict[str, str]

    def write(self, shard: Shard, frames: dict[str, pd.DataFrame], meta: dict[str, Any]) -> str:
        """COPY ``frames`` as shard ``shard``'s rows and record ``meta``, in one transaction;
        an earlier try's rows of the same shard are deleted first."""
        wh, key = self.wh, [self.name, self.version, shard.index]
        with wh.connect() as con:
            self._create(con, frames)
            wh.begin(con)
            try:
                _lz4_toast(wh, con)
                if self._written(con, shard):
                    for frame in frames:
                        wh.execute(con, f"delete from {self.tables[frame]} where {SHARD_COLUMN} = ?", [shard.index])
                for frame, df in frames.items():
                    data = to_arrow(df)
                    column = pa.array(np.full(data.num_rows, shard.index, dtype=np.int32))
                    copy_arrow(con, self.tables[frame], data.append_column(SHARD_COLUMN, column))
                wh.execute(con, f"delete from {PARTS_TABLE} where name = ? and version = ? and shard = ?", key)
                wh.execute(
                    con,
                    f"insert into {PARTS_TABLE} values (?, ?, ?, ?, ?, ?, now())",
                    [*key, shard.count, json.dumps(sorted(self.tables.values())), json.dumps(meta, default=str)],
                )
                wh.commit(con)
            except BaseException:
                _rollback_quietly(wh, con)
                raise
        return f"{', '.join(self.tables[f] for f in frames)} ({SHARD_COLUMN} = {shard.index})"

    def _create(self, con: Any, frames: dict[str, pd.DataFrame]) -> None:
        """The parts table and the staged tables, when missing (own transaction; concurrent
        shards create them one at a time)."""
        wh = self.wh
        wh.begin(con)
        try:
            wh.lock(con, DDL_LOCK)
            wh.ensure_schemas(con)
            wh.execute(con, f"create table if not exists {PARTS_TABLE} ({PARTS_DDL})")
            for frame, table in self.tables.items():
                if wh.table_exists(con, *table.split(".")):
                    continue
                source = self.like.get(frame)
                ddl = (
                    f"create table {table} (like {source})"
                    if source
                    else create_table_sql(table, to_arrow(frames[frame]).schema)
                )
                wh.execute(con, ddl)
                wh.execute(con, f"alter table {table} add column {SHARD_COLUMN} integer")
            wh.commit(con)
        except BaseException:
            _rollback_quietly(wh, con)
            raise

    def _written(self, con: Any, shard: Shard) -> bool:
        found = self.wh.query(
            f"select count(*) as n from {PARTS_TABLE} where name = ? and version = ? and shard = ?",
            [self.name, self.version, shard.index],
            con,
        )
        return int(found["n"].iloc[0]) > 0

    def metas(self, count: int) -> list[dict[str, Any]]:
        """Every shard's meta, in shard order; an error naming the first shard without a part."""
        with self.wh.connect(read_only=True) as con:
            if not self.wh.table_exists(con, *PARTS_TABLE.split(".")):
                found = pd.DataFrame({"shard": [], "shards": [], "meta": []})
            else:
                found = self.wh.query(
                    f"select shard, shards, meta from {PARTS_TABLE} where name = ? and version = ?",
                    [self.name, self.version],
                    con,
                )
        by_shard = {int(r.shard): r for r in found.itertuples() if int(r.shards) == count}
        for index in range(count):
            if index not in by_shard:
                raise MissingPartError(
                    f"{PARTS_TABLE}: shard {index} of {count} of {self.name} {self.version} has written no part "
                    "(run its task first)"
                )
        return [json.loads(by_shard[i].meta) for i in range(count)]

    def clear(self, con: Any = None) -> None:
        """Drop the staged tables and forget the parts (in ``con``'s open transaction when given)."""
        if con is None:
            with self.wh.connect() as c:
                self.wh.begin(c)
                self.clear(c)
                self.wh.commit(c)
            return
        for table in self.tables.values():
            self.wh.execute(con, f"drop table if exists {table}")
        if self.wh.table_exists(con, *PARTS_TABLE.split(".")):
            self.wh.execute(con, f"delete from {PARTS_TABLE} where name = ? and version = ?", [self.name, self.version])

    def sweep(self, older_than_hours: float = STALE_PARTS_HOURS) -> list[str]:
        """Drop the staged tables of runs whose newest part is older than ``older_than_hours``
        (runs that never switched); returns their versions."""
        wh = self.wh
        with wh.connect() as con:
            if not wh.table_exists(con, *PARTS_TABLE.split(".")):
                return []
            stale = wh.query(
                f"select version, max(tables) as tables from {PARTS_TABLE} where name = ? group by version "
                "having max(written_at) < now() - make_interval(secs => ?)",
                [self.name, older_than_hours * 3600.0],
                con,
            )
            for r in stale.itertuples():
                wh.begin(con)
                for table in json.loads(r.tables):
                    wh.execute(con, f"drop table if exists {table}")
                wh.execute(con, f"delete from {PARTS_TABLE} where name = ? and version = ?", [self.name, r.version])
                wh.commit(con)
        return [str(v) for v in stale["version"]]
