"""Warehouse tables of the tagging area (schema ``ml``; owner: tagging).

* ``ml.item_tags`` — one daily partition per ``partition_date`` and ``tagger_version``: the tags
  of every catalogue item that existed by the end of that day.
* ``ml.user_interest_profiles`` — one partition per ``as_of`` day and ``tagger_version``.
* ``ml.tag_labels`` — merchandiser labels used for training and as ``source='label'`` tags.
* ``ml.tag_backfill_ledger`` — partitions completed per tagger version (resumable backfills).
* ``ml.tagger_current_log`` — which tagger version the ``*_current`` views expose (last row).
* ``ml.item_tag_cache`` — per tagger version, the tags it gave each item and the item's
  fingerprint then (its text, labels and the vocabulary): a backfill tags only the items whose
  fingerprint changed. An item given no tag has one row without a tag.

A partition is written in one transaction together with its ledger row, so a killed run
leaves either the whole partition or nothing. The views ``ml.item_tags_current`` and
``ml.user_interest_profiles_current`` show the latest partition of exactly one version.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd

from ml.warehouse import Warehouse

ITEM_TAGS = "ml.item_tags"
PROFILES = "ml.user_interest_profiles"
LABELS = "ml.tag_labels"
LEDGER = "ml.tag_backfill_ledger"
CURRENT_LOG = "ml.tagger_current_log"
TAG_CACHE = "ml.item_tag_cache"
ITEM_TAGS_CURRENT = "ml.item_tags_current"
PROFILES_CURRENT = "ml.user_interest_profiles_current"

ITEM_TAG_COLUMNS = ("item_id", "tag", "score", "source", "tagger_version", "partition_date")
PROFILE_COLUMNS = (
    "user_id",
    "tag",
    "weight",
    "evidence_count",
    "last_seen",
    "uncertainty",
    "status",
    "candidate_reason",
    "tagger_version",
    "as_of",
)
DDL = {
    ITEM_TAGS: """item_id varchar, tag varchar, score double precision, source varchar,
        tagger_version varchar, partition_date date""",
    PROFILES: """user_id varchar, tag varchar, weight double precision, evidence_count bigint,
        last_seen timestamp, uncertainty double precision, status varchar, candidate_reason varchar,
        tagger_version varchar, as_of date""",
    LABELS: "item_id varchar, tag varchar, source_file varchar, loaded_at timestamptz",
    LEDGER: """tagger_version varchar, partition_date date, item_tag_rows bigint, profile_rows bigint,
        completed_at timestamptz, run_id varchar""",
    CURRENT_LOG: "tagger_version varchar, switched_at timestamptz, run_id varchar",
    TAG_CACHE: """tagger_version varchar, item_id varchar, fingerprint varchar, tag varchar,
        score double precision, source varchar""",
}
TAG_CACHE_COLUMNS = ("item_id", "fingerprint", "tag", "score", "source")
_VERSION = re.compile(r"^[A-Za-z0-9_.:-]+$")


def ensure_tables(wh: Warehouse, con: Any) -> None:
    wh.ensure_schemas(con)
    for table, ddl in DDL.items():
        wh.execute(con, f"create table if not exists {table} ({ddl})")


def check_version(version: str) -> str:
    """Tagger version ids go into view definitions: allow only ``[A-Za-z0-9_.:-]``."""
    if not _VERSION.match(version or ""):
        raise ValueError(f"invalid tagger version id {version!r}")
    return version


def completed_partitions(wh: Warehouse, version: str) -> set[date]:
    """Partitions of ``version`` recorded as complete in the ledger."""
    with wh.connect(read_only=True) as con:
        if not wh.table_exists(con, "ml", "tag_backfill_ledger"):
            return set()
        df = wh.query(f"select partition_date from {LEDGER} where tagger_version = ?", [version], con)
    return {pd.Timestamp(d).date() for d in df["partition_date"]}


def ledger(wh: Warehouse, version: str | None = None) -> pd.DataFrame:
    with wh.connect(read_only=True) as con:
        if not wh.table_exists(con, "ml", "tag_backfill_ledger"):
            return pd.DataFrame(columns=["tagger_version", "partition_date", "item_tag_rows", "profile_rows"])
        q, params = f"select * from {LEDGER}", []
        if version:
            q, params = q + " where tagger_version = ?", [version]
        return wh.query(q + " order by tagger_version, partition_date", params, con)


def write_partition(
    wh: Warehouse,
    version: str,
    day: date,
    item_tags: pd.DataFrame,
    profiles: pd.DataFrame,
    run_id: str,
) -> dict[str, int]:
    """Replace the partition ``day`` of ``version`` in both tables and record it in the ledger,
    all in one transaction (re-running gives the same rows, never duplicates)."""
    check_version(version)
    it = item_tags.assign(tagger_version=version, partition_date=day)[list(ITEM_TAG_COLUMNS)]
    pr = profiles.assign(tagger_version=version, as_of=day)[list(PROFILE_COLUMNS)]
    with wh.connect() as con:
        ensure_tables(wh, con)
        wh.begin(con)
        try:
            wh.execute(con, f"delete from {ITEM_TAGS} where tagger_version = ? and partition_date = ?", [version, day])
            wh.execute(con, f"delete from {PROFILES} where tagger_version = ? and as_of = ?", [version, day])
            wh.execute(con, f"delete from {LEDGER} where tagger_version = ? and partition_date = ?", [version, day])
            wh.append_df(con, ITEM_TAGS, it)
            wh.append_df(con, PROFILES, pr)
            wh.execute(
                con,
                f"insert into {LEDGER} values (?, ?, ?, ?, ?, ?)",
                [version, day, len(it), len(pr), datetime.now(UTC), run_id],
            )
            wh.commit(con)
        except BaseException:
            wh.rollback(con)
            raise
    return {"item_tag_rows": len(it), "profile_rows": len(pr)}


def partition_rows(wh: Warehouse, version: str, day: date) -> tuple[pd.DataFrame, int]:
    """(item tag rows, profile row count) currently stored for a partition of ``version``."""
    with wh.connect(read_only=True) as con:
        if not wh.table_exists(con, "ml", "item_tags"):
            return pd.DataFrame(columns=["item_id", "tag"]), 0
        tags = wh.query(
            f"select item_id, tag from {ITEM_TAGS} where tagger_version = ? and partition_date = ?", [version, day], con
        )
        n = wh.query(
            f"select count(*) as n from {PROFILES} where tagger_version = ? and as_of = ?", [version, day], con
        )["n"].iloc[0]
    return tags, int(n)


def cached_tags(wh: Warehouse, version: str) -> pd.DataFrame:
    """``ml.item_tag_cache``'s rows of ``version``: item_id, fingerprint, tag, score, source
    (tag, score and source missing on the row of an item given no tag)."""
    with wh.connect(read_only=True) as con:
        if not wh.table_exists(con, "ml", "item_tag_cache"):
            return no_cached_tags()
        return wh.query(
            f"select {', '.join(TAG_CACHE_COLUMNS)} from {TAG_CACHE} where tagger_version = ?", [version], con
        )


def no_cached_tags() -> pd.DataFrame:
    """An empty frame with :func:`cached_tags`' columns."""
    return pd.DataFrame({c: pd.Series(dtype=object) for c in TAG_CACHE_COLUMNS})


def remember_tags(wh: Warehouse, version: str, fingerprints: pd.Series, tags: pd.DataFrame) -> int:
    """Replace the cached tags of the items of ``fingerprints`` (item_id -> fingerprint) with
    their ``tags`` (item_id, tag, score, source), in one transaction. Returns the rows written."""
    check_version(version)
    fp = pd.DataFrame({"item_id": fingerprints.index.astype(str), "fingerprint": fingerprints.to_numpy()})
    rows = fp.merge(tags[["item_id", "tag", "score", "source"]], on="item_id", how="left")
    rows = rows.assign(tagger_version=version)[["tagger_version", *TAG_CACHE_COLUMNS]]
    with wh.connect() as con:
        ensure_tables(wh, con)
        wh.begin(con)
        try:  # (two backfills of one version at once: the second deletes what the first wrote)
            wh.lock(con, f"interestflow.item_tag_cache:{version}")
            ids = fp["item_id"].tolist()
            wh.execute(con, f"delete from {TAG_CACHE} where tagger_version = ? and item_id = any(?)", [version, ids])
            wh.append_df(con, TAG_CACHE, rows)
            wh.commit(con)
        except BaseException:
            wh.rollback(con)
            raise
    return len(rows)


def current_version(wh: Warehouse) -> str | None:
    """The tagger version the ``*_current`` views expose, if any."""
    with wh.connect(read_only=True) as con:
        if not wh.table_exists(con, "ml", "tagger_current_log"):
            return None
        df = wh.query(
            f"select tagger_version from {CURRENT_LOG} order by switched_at desc, tagger_version limit 1", None, con
        )
    return None if df.empty else str(df["tagger_version"].iloc[0])


def switch_current(wh: Warehouse, version: str, run_id: str) -> dict[str, Any]:
    """Point both ``*_current`` views at ``version`` (its latest partition) in one transaction."""
    check_version(version)
    with wh.connect() as con:
        ensure_tables(wh, con)
        n = wh.query(f"select count(*) as n from {LEDGER} where tagger_version = ?", [version], con)["n"].iloc[0]
        if not n:
            raise LookupError(f"tagger version {version} has no completed partitions: backfill it first")
        wh.begin(con)
        try:
            wh.execute(
                con,
                f"create or replace view {ITEM_TAGS_CURRENT} as select * from {ITEM_TAGS} "
                f"where tagger_version = '{version}' and partition_date = "
                f"(select max(partition_date) from {LEDGER} where tagger_version = '{version}')",
            )
            wh.execute(
                con,
                f"create or replace view {PROFILES_CURRENT} as select * from {PROFILES} "
                f"where tagger_version = '{version}' and as_of = "
                f"(select max(partition_date) from {LEDGER} where tagger_version = '{version}')",
            )
            wh.execute(con, f"insert into {CURRENT_LOG} values (?, ?, ?)", [version, datetime.now(UTC), run_id])
            wh.commit(con)
        except BaseException:
            wh.rollback(con)
            raise
    return {"tagger_version": version, "views": [ITEM_TAGS_CURRENT, PROFILES_CURRENT]}
