"""The pre-publish gate (GX): every active user gets k distinct known, not-yet-bought items,
propensities in (0, 1] and finite scores; a failure names the expectation and example rows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ml.quality.prepublish import GateFailure, check_recommendations

pytestmark = pytest.mark.unit

K = 2


@pytest.fixture()
def shop(warehouse):
    """Minimal marts: users u1-u3 are active, u1 bought i1; items i1-i5 exist."""
    with warehouse.connect() as con:
        con.execute("create schema if not exists marts")
        con.execute(
            """create table marts.interaction_events as select * from (values
               ('e1', 'u1', 'i1', 'purchase', timestamp '2026-10-01 10:00', 5.0),
               ('e2', 'u2', 'i2', 'view', timestamp '2026-10-01 11:00', 1.0),
               ('e3', 'u3', 'i3', 'view', timestamp '2026-10-01 12:00', 1.0))
               as t(event_id, user_id, item_id, event_type, event_at, weight)"""
        )
        con.execute("create table marts.item_features as select 'i' || range::varchar as item_id from range(1, 6)")
    return warehouse


def _recs() -> pd.DataFrame:
    rows = [("u1", "i2"), ("u1", "i3"), ("u2", "i1"), ("u2", "i3"), ("u3", "i4"), ("u3", "i5")]
    df = pd.DataFrame(rows, columns=["user_id", "item_id"])
    df["rank"] = df.groupby("user_id").cumcount() + 1
    df["score"] = 1.0 / df["rank"]
    df["propensity"] = 1.0
    df["run_id"] = "run-1"
    return df


def test_a_complete_table_passes_and_is_recorded(shop, data_docs):
    result = check_recommendations(_recs(), shop, k=K)
    assert result.passed and result.n_failed == 0 and result.n_expectations >= 9
    row = shop.query("select gate, run_id, passed from quality.gate_runs").iloc[0]
    assert (row["gate"], row["run_id"], bool(row["passed"])) == ("prepublish", "run-1", True)


CASES = {
    "missing_user": (lambda d: d[d["user_id"] != "u3"], "has_recommendations", {"user_id": "u3"}),
    "short_list": (lambda d: d.drop(index=5), "n_distinct_items", {"user_id": "u3"}),
    "unknown_item": (
        lambda d: d.assign(item_id=d["item_id"].where(d.index != 4, "i99")),
        "is_known_item",
        {"user_id": "u3"},
    ),
    "already_bought": (
        lambda d: d.assign(item_id=d["item_id"].where(d.index != 0, "i1")),
        "is_excluded_item",
        {"user_id": "u1"},
    ),
    "zero_propensity": (
        lambda d: d.assign(propensity=d["propensity"].where(d.index != 2, 0.0)),
        "propensity",
        {"user_id": "u2"},
    ),
    "propensity_above_one": (
        lambda d: d.assign(propensity=d["propensity"].where(d.index != 2, 1.5)),
        "propensity",
        {"user_id": "u2"},
    ),
    "infinite_score": (
        lambda d: d.assign(score=d["score"].where(d.index != 1, np.inf)),
        "score_is_finite",
        {"user_id": "u1"},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_broken_table_fails_with_a_readable_summary(case, shop, data_docs):
    breaker, column, example = CASES[case]
    with pytest.raises(GateFailure) as exc:
        check_recommendations(breaker(_recs()), shop, k=K)
    failures = exc.value.failures
    hit = [f for f in failures if f["column"] == column]
    assert hit, failures
    assert any(example.items() <= ex.items() for ex in hit[0]["examples"]), hit[0]["examples"]
    text = str(exc.value)
    assert "gate 'prepublish' FAILED" in text and column in text and "Data Docs" in text
    row = shop.query("select passed, failures, data_docs_path from quality.gate_runs").iloc[0]
    assert not row["passed"] and any(f["column"] == column for f in json.loads(row["failures"]))
    assert (data_docs / "runs" / "prepublish" / "run-1.html").exists()
