"""The assistant's slate log: what it showed, so its impressions and clicks reach the feedback mart.

Every answer is appended, one JSON line per shown item in the columns of ``ml.logged_slates``
(``policy`` = ``assistant``, exact propensities), to ``<INTERESTFLOW_ASSISTANT_LOG>/<UTC date>.jsonl``:
the page's API answers from a read-only snapshot and never writes to the warehouse (DuckDB has
one writer). ``build_features``' ``load_assistant_log`` task loads the lines into
``ml.logged_slates`` before the feature models run, so when the shop's export carries the
assistant's ``recommendation_id`` and ``position`` on its impression and click events,
``marts.bandit_feedback`` joins them with their propensities like any published slate. Loading is
idempotent (a slate already loaded is skipped); files of past days are moved to ``done/`` once
loaded (today's file may still grow, so it is read again next time).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ml.explore import columns as C
from ml.warehouse import Warehouse

log = logging.getLogger(__name__)

RUN_ID = "assistant"


def log_dir() -> Path:
    from ml.settings import settings

    return settings().assistant_log_dir


def append(rows: list[dict[str, Any]], folder: Path | None = None) -> Path:
    """Append one answer's rows (``columns.LOGGED_SLATE_COLUMNS``) to today's file; returns it."""
    folder = Path(folder or log_dir())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{datetime.now(UTC):%Y-%m-%d}.jsonl"
    text = "".join(json.dumps(r, default=str, sort_keys=True) + "\n" for r in rows)
    with open(path, "a", encoding="utf-8") as f:  # one write per answer: lines never interleave
        f.write(text)
    return path


def load_assistant_log(
    run_id: str = "manual", folder: Path | None = None, warehouse: str | None = None
) -> dict[str, Any]:
    """Load the logged answers not yet in ``ml.logged_slates``; move past days' files to ``done/``."""
    from ml.explore import store

    folder = Path(folder or log_dir())
    files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
    if not files:
        return {"slates": 0, "rows": 0, "files": 0, "run_id": run_id}
    frames = [f for f in map(_read, files) if len(f)]
    slates = added = 0
    if frames:
        rows = pd.concat(frames, ignore_index=True)
        wh = Warehouse.from_env(warehouse)
        with wh.connect() as con:
            wh.begin(con)
            store.ensure_tables(wh, con)
            have = wh.query(
                f"select distinct recommendation_id from {C.LOGGED_SLATES} where run_id = ? and as_of >= ?",
                [RUN_ID, rows[C.AS_OF].min().to_pydatetime()],
                con,
            )
            new = rows[~rows[C.RECOMMENDATION_ID].isin(set(have["recommendation_id"]))]
            added = wh.append_df(con, C.LOGGED_SLATES, new[list(C.LOGGED_SLATE_COLUMNS)])
            wh.commit(con)
        slates = int(new[C.RECOMMENDATION_ID].nunique())
    today = f"{datetime.now(UTC):%Y-%m-%d}.jsonl"
    done = folder / "done"
    for p in files:
        if p.name < today:
            done.mkdir(exist_ok=True)
            p.replace(done / p.name)
    log.info("load_assistant_log: %d new slates (%d rows) from %d files", slates, added, len(files))
    return {"slates": slates, "rows": int(added), "files": len(files), "run_id": run_id}


def _read(path: Path) -> pd.DataFrame:
    """A log file's rows; a line cut short by a crash mid-write is skipped with a warning."""
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            log.warning("%s line %d is not JSON (a write cut short?): skipped", path, n)
    df = pd.DataFrame(records, columns=list(C.LOGGED_SLATE_COLUMNS))
    df[C.AS_OF] = pd.to_datetime(df[C.AS_OF], utc=True).dt.tz_localize(None)
    df[C.POSITION] = df[C.POSITION].astype("int64")
    return df
