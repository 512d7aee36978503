"""``quality.gate_runs``: one row per gate run (passed or not), the reference for the next run.

Columns: gate, run_id, checked_at, passed, n_expectations, n_failed, failures (JSON list of
``{expectation, column, failing_count, examples}``), data_docs_path, details (JSON: frames,
row counts, the profile the next run compares against, skipped checks). Re-running a gate for
the same ``run_id`` replaces its row (idempotent).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ml.warehouse import Warehouse

if TYPE_CHECKING:
    from ml.quality.runner import GateResult

TABLE = "quality.gate_runs"
DDL = f"""create table if not exists {TABLE} (
    gate varchar, run_id varchar, checked_at timestamptz, passed boolean, n_expectations integer,
    n_failed integer, failures varchar, data_docs_path varchar, details varchar)"""


def ensure_table(wh: Warehouse, con: Any) -> None:
    wh.ensure_schemas(con)
    wh.execute(con, DDL)


def record(wh: Warehouse, result: GateResult, con: Any = None) -> None:
    """Write (or replace) the row of ``result.gate`` / ``result.run_id``."""
    if con is None:
        with wh.connect() as c:
            ensure_table(wh, c)
            wh.begin(c)
            record(wh, result, c)
            wh.commit(c)
        return
    ensure_table(wh, con)
    wh.execute(con, f"delete from {TABLE} where gate = ? and run_id = ?", [result.gate, result.run_id])
    wh.execute(
        con,
        f"insert into {TABLE} values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            result.gate,
            result.run_id,
            datetime.now(UTC),
            bool(result.passed),
            int(result.n_expectations),
            int(result.n_failed),
            json.dumps(result.failures, default=str),
            result.data_docs_path,
            json.dumps(result.details, default=str),
        ],
    )


def previous_details(wh: Warehouse, gate: str, exclude_run_id: str | None = None, con: Any = None) -> dict[str, Any]:
    """The ``details`` of the newest *passed* run of ``gate`` other than ``exclude_run_id``; {} if none."""
    if con is None:
        if wh.kind == "duckdb" and not wh.path.exists():
            return {}
        with wh.connect(read_only=True) as c:
            return previous_details(wh, gate, exclude_run_id, c)
    if not wh.table_exists(con, "quality", "gate_runs"):
        return {}
    df = wh.query(
        f"select details from {TABLE} where gate = ? and passed and run_id <> ? order by checked_at desc limit 1",
        [gate, exclude_run_id or ""],
        con,
    )
    return {} if df.empty else dict(json.loads(df["details"].iloc[0]))


def previous_profile(wh: Warehouse, gate: str, exclude_run_id: str | None = None, con: Any = None) -> dict[str, Any]:
    """The profile (see :mod:`ml.quality.profile`) of the newest passed run of ``gate``; {} if none."""
    return dict(previous_details(wh, gate, exclude_run_id, con).get("profile") or {})
