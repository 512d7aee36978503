"""The GX gates of build_features on real dbt output: staged events and marts (volume, nulls,
ranges, drift against the previous passed build)."""

from __future__ import annotations

import json

import pytest

from ml.quality.gates import check_marts, check_staged_events
from ml.quality.runner import GateFailure

pytestmark = [pytest.mark.dbt, pytest.mark.slow]


def test_staged_events_gate_checks_each_increment_once(built_copy):
    wh = built_copy
    first = check_staged_events(wh, run_id="r1")
    n = int(wh.query("select count(*) as n from staging.stg_shop__events")["n"].iloc[0])
    assert first.passed and first.details["checked_rows"] == n
    second = check_staged_events(wh, run_id="r2")
    assert second.passed and second.details["checked_rows"] == 0  # nothing new since r1


def test_marts_gate_trips_on_a_volume_drop_and_a_shifted_feature(built_copy):
    wh = built_copy
    first = check_marts(wh, run_id="r1")
    assert first.passed and any("no previous passed run" in s for s in first.details["skipped"])
    second = check_marts(wh, run_id="r2")  # same marts: volume and drift now checked, and pass
    assert second.passed and second.n_expectations > first.n_expectations

    with wh.connect() as con:
        con.execute("delete from marts.interaction_events where hash(event_id) % 10 < 4")  # ~40 % of the rows
        con.execute("update marts.item_features set price = price * 5")
    with pytest.raises(GateFailure) as exc:
        check_marts(wh, run_id="r3")
    failed = {(f["frame"], f["expectation"]) for f in exc.value.failures}
    assert ("interaction_events", "expect_table_row_count_to_be_between") in failed
    assert ("item_features", "expect_column_kl_divergence_to_be_less_than") in failed
    text = str(exc.value)
    assert "gate 'marts' FAILED" in text and "item_features.price" in text and "Data Docs" in text
    row = wh.query("select passed, failures, data_docs_path from quality.gate_runs where run_id = 'r3'").iloc[0]
    assert not row["passed"] and len(json.loads(row["failures"])) == len(exc.value.failures)
    # the failed run is not the reference of the next one: r2 still is
    with pytest.raises(GateFailure) as again:
        check_marts(wh, run_id="r4")
    assert again.value.result.details["rows"]["interaction_events"] < second.details["rows"]["interaction_events"]
