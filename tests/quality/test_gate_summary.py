"""What `make demo` prints: the newest run of every gate."""

from __future__ import annotations

import pytest

from ml.quality import store
from ml.quality.runner import GateResult
from ml.quality.summary import latest_gate_runs, render_gate_runs

pytestmark = pytest.mark.unit


def _result(gate: str, run_id: str, passed: bool) -> GateResult:
    failures = (
        []
        if passed
        else [{"frame": "t", "expectation": "expect_x", "column": "c", "failing_count": 3, "examples": [1]}]
    )
    return GateResult(gate, run_id, passed, 4, len(failures), failures, data_docs_path=f"/docs/{gate}/{run_id}.html")


def test_latest_run_per_gate_and_rerun_replaces(warehouse):
    assert latest_gate_runs(warehouse) == []
    store.record(warehouse, _result("marts", "r1", True))
    store.record(warehouse, _result("marts", "r2", False))
    store.record(warehouse, _result("landing_events", "b1", True))
    store.record(warehouse, _result("landing_events", "b1", True))  # the same run again: replaced
    runs = latest_gate_runs(warehouse)
    assert [(r["gate"], r["run_id"], r["passed"]) for r in runs] == [
        ("landing_events", "b1", True),
        ("marts", "r2", False),
    ]
    assert runs[1]["failures"][0]["failing_count"] == 3
    assert int(warehouse.query("select count(*) as n from quality.gate_runs")["n"].iloc[0]) == 3
    text = render_gate_runs(runs)
    assert "marts" in text and "FAILED" in text and "expect_x" in text


def test_reference_is_the_newest_passed_run_other_than_this_one(warehouse):
    a = _result("marts", "r1", True)
    a.details = {"profile": {"t": {"rows": 10}}}
    b = _result("marts", "r2", False)
    b.details = {"profile": {"t": {"rows": 99}}}
    store.record(warehouse, a)
    store.record(warehouse, b)
    assert store.previous_profile(warehouse, "marts") == {"t": {"rows": 10}}
    assert store.previous_profile(warehouse, "marts", exclude_run_id="r1") == {}
