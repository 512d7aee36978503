"""Backfills of item tags and interest profiles over daily partitions.

A partition ``D`` holds (1) the tags of every catalogue item created by the end of ``D`` and
(2) the interest profiles from behaviour up to the end of ``D`` (UTC), both produced by one
tagger version. Guarantees:

* **Idempotent** — a partition is replaced (delete + insert) in one transaction, with its
  ledger row; re-running gives the same rows, never duplicates.
* **Resumable** — completed partitions are in ``ml.tag_backfill_ledger``; a new run skips them
  (``force`` recomputes). A run killed mid-way leaves whole partitions or nothing.
* **Dry run** — computes everything, reports rows per partition and the shift of the tag
  distribution against what is stored, and writes nothing.
* **Incremental tagging** — an item is tagged again only when its fingerprint (text, labels,
  tagger version, vocabulary) differs from the one in ``ml.item_tag_cache``; the others keep
  the tags cached for that fingerprint, and the tagger is not even loaded when no item changed.
  ``force`` tags every item again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from ml.tagging import store
from ml.tagging.catalog import TaggerArtifact, item_fingerprints, tag_items
from ml.tagging.data import load_catalog, load_labels
from ml.tagging.defaults import FAMILY
from ml.tagging.profiles import InterestProfiler, QueryTagger
from ml.tagging.text import CREATED_AT, ITEM_ID, item_texts
from ml.tagging.vocabulary import TAG, Vocabulary
from ml.warehouse import Warehouse

log = logging.getLogger(__name__)


def to_date(value: Any) -> date:
    """A date from ``date``, ``datetime``, pandas timestamps or ISO text (``2026-10-01``)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return pd.Timestamp(str(value)).date()


def partitions_between(start: Any, end: Any) -> list[date]:
    """Every day from ``start`` to ``end``, both included."""
    s, e = to_date(start), to_date(end)
    if e < s:
        raise ValueError(f"end date {e} is before start date {s}")
    return [s + timedelta(days=i) for i in range((e - s).days + 1)]


def partition_for_run(data_interval_start: Any = None, data_interval_end: Any = None, logical_date: Any = None) -> date:
    """The partition a scheduled or backfill run owns: the day its data interval starts
    (``@daily`` with data intervals), else the day before its logical date (the last full day)."""
    if data_interval_start is not None and data_interval_end is not None:
        s, e = pd.Timestamp(data_interval_start), pd.Timestamp(data_interval_end)
        if e > s:
            return s.date()
    anchor = logical_date if logical_date is not None else data_interval_start
    if anchor is None:
        raise ValueError("a run without dates needs start_date/end_date params")
    return pd.Timestamp(anchor).date() - timedelta(days=1)


def day_end(day: date) -> pd.Timestamp:
    """The exclusive end of a UTC day as a naive timestamp (the marts store naive UTC)."""
    return pd.Timestamp(day) + pd.Timedelta(days=1)


def resolve_version(wh: Warehouse, tagger_version: str | None) -> str:
    """The given tagger version (must be registered as a tagger) or the tagger champion."""
    from ml.registry import Registry

    reg = Registry(wh)
    if tagger_version:
        mv = reg.get(tagger_version)
        if mv["family"] != FAMILY:
            raise ValueError(f"{tagger_version} is a {mv['family']} version, not a {FAMILY}")
        return str(tagger_version)
    champ = reg.champion(FAMILY)
    if champ is None:
        raise LookupError("no champion tagger: run finetune_tagger first, or pass a tagger version")
    return str(champ["version_id"])


@dataclass(frozen=True)
class BackfillPlan:
    tagger_version: str
    partitions: list[str]
    completed: list[str]
    todo: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_backfill(
    wh: Warehouse, start: Any, end: Any, tagger_version: str | None = None, force: bool = False
) -> BackfillPlan:
    version = store.check_version(resolve_version(wh, tagger_version))
    days = partitions_between(start, end)
    done = store.completed_partitions(wh, version)
    todo = days if force else [d for d in days if d not in done]
    return BackfillPlan(
        tagger_version=version,
        partitions=[d.isoformat() for d in days],
        completed=[d.isoformat() for d in days if d in done],
        todo=[d.isoformat() for d in todo],
    )


def tag_shift(new: pd.DataFrame, old: pd.DataFrame, top: int = 5) -> dict[str, Any]:
    """Shift between two tag distributions (share of tag rows per tag): total variation
    distance in [0, 1] and the tags whose share moved most."""
    if old.empty:
        return {"total_variation": None, "top": []}
    p = new[TAG].value_counts(normalize=True)
    q = old[TAG].value_counts(normalize=True)
    tags = p.index.union(q.index)
    p, q = p.reindex(tags, fill_value=0.0), q.reindex(tags, fill_value=0.0)
    diff = (p - q).sort_values(key=np.abs, ascending=False)
    moved = [
        {"tag": str(t), "old_share": round(float(q[t]), 4), "new_share": round(float(p[t]), 4)}
        for t in diff.index[:top]
        if diff[t] != 0
    ]
    return {"total_variation": round(float(0.5 * np.abs(p - q).sum()), 4), "top": moved}


@dataclass
class TagBackfill:
    """Recomputes item tags and interest profiles of daily partitions with one tagger version."""

    wh: Warehouse
    tagger_version: str
    batch_size: int = 256
    dry_run: bool = False
    run_id: str = "manual"
    use_labels: bool = True
    force: bool = False
    threads: int | None = None
    pause_seconds: float = 0.0
    profiler: InterestProfiler = field(default_factory=InterestProfiler)

    def __post_init__(self) -> None:
        store.check_version(self.tagger_version)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.pause_seconds < 0:
            raise ValueError("pause_seconds must be >= 0")

    def load_artifact(self) -> TaggerArtifact:
        from ml.registry import Registry, load_artifact

        mv = Registry(self.wh).get(self.tagger_version)
        art = load_artifact(mv["artifact_path"])
        if not isinstance(art, TaggerArtifact):
            raise TypeError(f"{self.tagger_version}: artifact is not a tagger artifact")
        return art

    def run(
        self, partitions: list[Any], on_partition: Callable[[dict[str, Any]], None] | None = None
    ) -> dict[str, Any]:
        """Process the partitions in order; returns a report with one entry per partition."""
        days = sorted({to_date(d) for d in partitions})
        done = set() if self.force else store.completed_partitions(self.wh, self.tagger_version)
        skipped = [d for d in days if d in done]
        days = [d for d in days if d not in done]
        report: dict[str, Any] = {
            "tagger_version": self.tagger_version,
            "dry_run": self.dry_run,
            "skipped": [d.isoformat() for d in skipped],
            "partitions": [],
        }
        if not days:
            return report
        t0 = time.perf_counter()
        inputs = self._inputs(max(days))
        report["tagging_seconds"] = round(time.perf_counter() - t0, 2)
        report["items_tagged"], report["items_reused"] = inputs["items_tagged"], inputs["items_reused"]
        current = store.current_version(self.wh)
        for day in days:
            t = time.perf_counter()
            item_tags, profiles = self.compute(day, inputs)
            entry: dict[str, Any] = {
                "partition": day.isoformat(),
                "item_tag_rows": len(item_tags),
                "profile_rows": len(profiles),
                "users": int(profiles["user_id"].nunique()) if len(profiles) else 0,
            }
            if self.dry_run:
                old, old_profiles = store.partition_rows(self.wh, self.tagger_version, day)
                baseline = self.tagger_version
                if old.empty and current and current != self.tagger_version:
                    old, old_profiles = store.partition_rows(self.wh, current, day)
                    baseline = current
                entry.update(
                    stored_item_tag_rows=len(old),
                    stored_profile_rows=old_profiles,
                    baseline_version=baseline if len(old) else None,
                    tag_shift=tag_shift(item_tags, old),
                    written=False,
                )
            else:
                store.write_partition(self.wh, self.tagger_version, day, item_tags, profiles, self.run_id)
                entry["written"] = True
            entry["seconds"] = round(time.perf_counter() - t, 2)
            report["partitions"].append(entry)
            log.info("partition %s", entry)
            if on_partition is not None:
                on_partition(entry)
            if self.pause_seconds:
                time.sleep(self.pause_seconds)
        return report

    # ---- inputs read once per run ------------------------------------------------------------
    def _inputs(self, last_day: date) -> dict[str, Any]:
        wh = self.wh
        vocabulary = Vocabulary.from_warehouse(wh)
        catalog = load_catalog(wh)
        labels = load_labels(wh) if self.use_labels else None
        texts = item_texts(catalog)
        tags, tagged = self._tags(catalog, texts, vocabulary, labels)
        end = day_end(last_day).to_pydatetime()
        with wh.connect(read_only=True) as con:
            events = wh.query(
                "select user_id, item_id, event_at, weight from marts.interaction_events where event_at < ?",
                [end],
                con,
            )
            searches = wh.query(
                "select user_id, search_query, event_at from staging.stg_shop__events "
                "where event_type = 'search' and search_query is not null and event_at < ?",
                [end],
                con,
            )
            segments = None
            if wh.table_exists(con, "ml", "user_segments"):
                segments = wh.query(
                    "select distinct user_id, cast(segment as varchar) as segment from ml.user_segments", None, con
                )
        for df in (events, searches):
            df["event_at"] = pd.to_datetime(df["event_at"])
        per_item = tags.groupby(ITEM_ID)[TAG].apply(list)
        q = QueryTagger().fit(texts, [per_item.get(i, []) for i in catalog[ITEM_ID]])
        return {
            "vocabulary": vocabulary,
            "catalog": catalog,
            "tags": tags,
            "events": events,
            "searches": searches,
            "segments": segments,
            "query_tags": q.transform(searches["search_query"].tolist()),
            "items_tagged": tagged,
            "items_reused": len(catalog) - tagged,
        }

    def _tags(
        self, catalog: pd.DataFrame, texts: list[str], vocabulary: Vocabulary, labels: pd.DataFrame | None
    ) -> tuple[pd.DataFrame, int]:
        """Every item's tag rows and how many items were tagged now (``texts``: the catalogue's
        tagger inputs): items whose fingerprint is the one cached keep their cached tags (none
        with ``force``, which does not read the cache); the rest are tagged, and (unless a dry
        run) cached."""
        fingerprints = item_fingerprints(catalog[ITEM_ID], texts, labels, self.tagger_version, vocabulary)
        cached = store.no_cached_tags() if self.force else store.cached_tags(self.wh, self.tagger_version)
        then = cached.drop_duplicates(ITEM_ID).set_index(ITEM_ID)["fingerprint"]
        same = (then.reindex(fingerprints.index) == fingerprints).to_numpy(dtype=bool)
        kept = cached[cached[ITEM_ID].isin(set(fingerprints.index[same])) & cached[TAG].notna()]
        parts = [kept[[ITEM_ID, TAG, "score", "source"]].drop_duplicates([ITEM_ID, TAG])]
        todo = catalog[~same]
        if len(todo):
            fresh = tag_items(todo, self.load_artifact(), vocabulary, labels, self.batch_size, self.threads)
            if not self.dry_run:
                store.remember_tags(self.wh, self.tagger_version, fingerprints[~same], fresh)
            parts.append(fresh)
        tags = pd.concat(parts, ignore_index=True)
        tags = tags.astype({ITEM_ID: str, TAG: str, "score": np.float64, "source": str})
        log.info("tags of %d items reused, %d items tagged", int(same.sum()), len(todo))
        return tags.sort_values([ITEM_ID, TAG]).reset_index(drop=True), len(todo)

    def compute(self, day: date, inputs: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(item tag rows, profile rows) of one partition, without writing anything."""
        end = day_end(day)
        catalog = inputs["catalog"]
        created = catalog[CREATED_AT]
        existing = catalog.loc[created.isna() | (created < end), ITEM_ID]
        item_tags = inputs["tags"][inputs["tags"][ITEM_ID].isin(set(existing))].reset_index(drop=True)
        profiles = self.profiler.profile(
            inputs["events"],
            item_tags,
            inputs["vocabulary"],
            end,
            searches=inputs["searches"],
            query_tags=inputs["query_tags"],
            segments=inputs["segments"],
        )
        return item_tags, profiles
