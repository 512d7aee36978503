"""Scoring reads dbt's ``marts.interactions`` as it is when it holds exactly what scoring would
compute from ``marts.interaction_events`` (same horizon, same half-life, purchases as the
excluded pairs), and aggregates the events otherwise. Explore reads sessions per user from
``marts.user_features``."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from ml.features.interactions import load_decayed_interactions, mart_mismatch
from ml.warehouse import Warehouse

pytestmark = pytest.mark.dbt


def _same(a, b) -> None:
    fa = a.frame.set_index(["user_id", "item_id"])["weight"].sort_index()
    fb = b.frame.set_index(["user_id", "item_id"])["weight"].sort_index()
    assert list(fa.index) == list(fb.index) and len(fa) > 100
    np.testing.assert_allclose(fa.to_numpy(), fb.to_numpy(), rtol=1e-9, atol=0)
    for column in ("n_events", "last_at"):  # (what the contexts derive known tags from)
        ca = a.frame.set_index(["user_id", "item_id"])[column].sort_index()
        assert ca.tolist() == b.frame.set_index(["user_id", "item_id"])[column].sort_index().tolist(), column
    assert list(a.users) == list(b.users) and a.as_of == b.as_of
    ea = a.excluded.set_index(["user_id", "item_id"])["weight"].sort_index()
    eb = b.excluded.set_index(["user_id", "item_id"])["weight"].sort_index()
    assert list(ea.index) == list(eb.index) and len(ea) > 0
    assert ea.to_numpy().tolist() == eb.to_numpy().tolist()


def check_mart_path(wh: Warehouse, caplog: pytest.LogCaptureFixture) -> None:
    """On a dbt-built warehouse: the mart path and the aggregation give the same weights, users,
    horizon and excluded pairs; each refusal of the mart is named."""
    half_life = float(wh.query("select max(decay_half_life_days) as h from marts.interactions")["h"].iloc[0])
    as_of = pd.Timestamp(wh.query("select max(event_at) as t from marts.interaction_events")["t"].iloc[0])
    with wh.connect(read_only=True) as con:
        assert mart_mismatch(wh, con, half_life, ("purchase",), as_of) is None
        assert "half-life" in mart_mismatch(wh, con, half_life / 2, ("purchase",), as_of)
        assert "not only purchases" in mart_mismatch(wh, con, half_life, ("purchase", "add_to_cart"), as_of)
        assert "stale" in mart_mismatch(wh, con, half_life, ("purchase",), as_of + pd.Timedelta(seconds=1))
    with caplog.at_level(logging.INFO, logger="ml.features.interactions"):
        caplog.clear()
        from_mart = load_decayed_interactions(wh, half_life, ("purchase",))
        assert not [r for r in caplog.records if "aggregates" in r.getMessage()]
        # a half-life a hair off the mart's refuses it: the events are aggregated
        aggregated = load_decayed_interactions(wh, half_life * (1 + 1e-12), ("purchase",))
        assert [r for r in caplog.records if "aggregates" in r.getMessage() and "half-life" in r.getMessage()]
    _same(from_mart, aggregated)
    # no excluded types: the mart serves, with no excluded pairs
    plain = load_decayed_interactions(wh, half_life)
    assert plain.excluded.empty and list(plain.excluded.columns) == ["user_id", "item_id", "weight"]
    assert len(plain.frame) == len(from_mart.frame)


def test_scoring_reads_the_interactions_mart_when_it_matches(built_copy: Warehouse, caplog) -> None:
    check_mart_path(built_copy, caplog)


def test_a_stale_mart_is_not_read(built_copy: Warehouse, caplog) -> None:
    """A newer event than the mart's horizon (events landed, the mart not rebuilt): the events
    are aggregated, so the newest event counts."""
    wh = built_copy
    with wh.connect() as con:
        row = wh.query("select * from marts.interaction_events limit 1", None, con)
        late = row.assign(event_at=pd.Timestamp(row["event_at"].iloc[0]) + pd.Timedelta(days=400))
        wh.append_df(con, "marts.interaction_events", late)
    with caplog.at_level(logging.INFO, logger="ml.features.interactions"):
        got = load_decayed_interactions(wh, 14.0, ("purchase",))
    assert any("stale" in r.getMessage() for r in caplog.records)
    assert got.as_of == late["event_at"].iloc[0]
    key = (late["user_id"].iloc[0], late["item_id"].iloc[0])
    w = got.frame.set_index(["user_id", "item_id"])["weight"]
    assert w.loc[key] >= float(late["weight"].iloc[0])  # the late event at full weight


def test_sessions_per_user_come_from_user_features(built_copy: Warehouse) -> None:
    from ml.explore.store import read_sessions

    wh = built_copy
    got = read_sessions(wh)
    uf = wh.query("select user_id, n_sessions from marts.user_features")
    assert got == dict(zip(uf["user_id"], uf["n_sessions"].astype(int), strict=True))
    built = wh.query(
        "select user_id, count(distinct session_key) as n from intermediate.int_sessions_built group by user_id"
    )
    assert all(got[u] == int(n) for u, n in zip(built["user_id"], built["n"], strict=True))
    # without the mart: distinct session ids in staging
    with wh.connect() as con:
        wh.execute(con, "drop table marts.user_features")
    ids = wh.query(
        "select user_id, count(distinct session_id) as n from staging.stg_shop__events "
        "where session_id is not null group by user_id"
    )
    assert read_sessions(wh) == dict(zip(ids["user_id"], ids["n"].astype(int), strict=True))
