"""Gate results for summaries (``make demo``) and the UI."""

from __future__ import annotations

import json
from typing import Any

from ml.warehouse import Warehouse


def latest_gate_runs(wh: Warehouse | None = None, examples: int = 3) -> list[dict[str, Any]]:
    """The newest run of every gate, gate name order: ``{gate, run_id, checked_at, passed,
    n_expectations, n_failed, failures (at most ``examples``), data_docs_path}``. [] before any run."""
    wh = wh or Warehouse.from_env()
    if wh.kind == "duckdb" and not wh.path.exists():
        return []
    with wh.connect(read_only=True) as con:
        if not wh.table_exists(con, "quality", "gate_runs"):
            return []
        df = wh.query(
            "select gate, run_id, checked_at, passed, n_expectations, n_failed, failures, data_docs_path "
            "from quality.gate_runs order by gate, checked_at desc",
            None,
            con,
        )
    out = []
    for gate, g in df.groupby("gate", sort=True):
        r = g.iloc[0]
        out.append(
            {
                "gate": str(gate),
                "run_id": str(r["run_id"]),
                "checked_at": str(r["checked_at"]),
                "passed": bool(r["passed"]),
                "n_expectations": int(r["n_expectations"]),
                "n_failed": int(r["n_failed"]),
                "failures": [
                    {k: f.get(k) for k in ("frame", "expectation", "column", "failing_count", "examples")}
                    for f in json.loads(r["failures"] or "[]")[:examples]
                ],
                "data_docs_path": str(r["data_docs_path"] or ""),
            }
        )
    return out


def render_gate_runs(runs: list[dict[str, Any]]) -> str:
    """Plain-text lines for a summary: one per gate, failures indented below."""
    if not runs:
        return "Data-quality gates: no runs yet"
    lines = ["Data-quality gates (latest run of each):"]
    for r in runs:
        verdict = "passed" if r["passed"] else "FAILED"
        lines.append(
            f"  {r['gate']:<16} {verdict:<7} {r['n_expectations'] - r['n_failed']}/{r['n_expectations']} expectations"
            f"  ({r['data_docs_path']})"
        )
        for f in r["failures"]:
            lines.append(
                f"      - {f['expectation']} on {f.get('frame')}.{f.get('column')}: {f['failing_count']} failing"
            )
    return "\n".join(lines)
