"""``load_decayed_interactions``: the decayed user x item weights, the users and the excluded
pairs that scoring reads, aggregated by the warehouse (DuckDB and PostgreSQL), against
``decayed`` over every event in pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.features.interactions import decayed, load_decayed_interactions, load_interaction_events
from ml.warehouse import Warehouse

HALF_LIFE = 7.0


def _events() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 400
    start = pd.Timestamp("2026-10-01 00:00:00")
    # sub-second times, repeated pairs, several event types, one user with only purchases
    at = start + pd.to_timedelta(rng.integers(0, 30 * 86400 * 1_000_000, n), unit="us")
    df = pd.DataFrame(
        {
            "user_id": [f"u{x}" for x in rng.integers(0, 25, n)],
            "item_id": [f"i{x}" for x in rng.integers(0, 40, n)],
            "event_type": rng.choice(["view", "click", "add_to_cart", "purchase"], n),
            "event_at": at,
            "weight": rng.choice([1.0, 2.0, 3.0, 5.0], n),
        }
    )
    extra = pd.DataFrame(
        {
            "user_id": ["buyer", "buyer"],
            "item_id": ["i1", "i1"],
            "event_type": ["purchase", "purchase"],
            "event_at": [start, start + pd.Timedelta(hours=1)],
            "weight": [5.0, 5.0],
        }
    )
    return pd.concat([df, extra], ignore_index=True)


def _load(wh: Warehouse, events: pd.DataFrame) -> None:
    with wh.connect() as con:
        wh.execute(con, "create schema if not exists marts")
        wh.execute(
            con,
            "create table marts.interaction_events (user_id varchar, item_id varchar, event_type varchar, "
            "event_at timestamp, weight double precision)",
        )
        wh.append_df(con, "marts.interaction_events", events)


def _check(wh: Warehouse) -> None:
    events = load_interaction_events(wh)
    got = load_decayed_interactions(wh, HALF_LIFE, ("purchase",))
    as_of = events["event_at"].max()
    assert got.as_of == as_of
    want = decayed(events, as_of, HALF_LIFE).set_index(["user_id", "item_id"])["weight"].sort_index()
    have = got.frame.set_index(["user_id", "item_id"])["weight"].sort_index()
    assert list(have.index) == list(want.index)
    np.testing.assert_allclose(have.to_numpy(), want.to_numpy(), rtol=1e-12, atol=0)
    assert list(got.users) == sorted(events["user_id"].unique())
    bought = events[events["event_type"] == "purchase"].groupby(["user_id", "item_id"]).size().sort_index()
    excl = got.excluded.set_index(["user_id", "item_id"])["weight"].sort_index()
    assert list(excl.index) == list(bought.index)
    assert excl.to_numpy().tolist() == bought.astype(float).to_numpy().tolist()
    assert excl.loc[("buyer", "i1")] == 2.0
    none = load_decayed_interactions(wh, HALF_LIFE)
    assert none.excluded.empty and list(none.excluded.columns) == ["user_id", "item_id", "weight"]


def test_duckdb_matches_pandas(warehouse: Warehouse) -> None:
    _load(warehouse, _events())
    _check(warehouse)


@pytest.mark.integration
def test_postgres_matches_pandas(pg_warehouse: Warehouse) -> None:
    _load(pg_warehouse, _events())
    _check(pg_warehouse)


def test_no_events(warehouse: Warehouse) -> None:
    _load(warehouse, _events().iloc[:0])
    got = load_decayed_interactions(warehouse, HALF_LIFE, ("purchase",))
    assert got.frame.empty and got.excluded.empty and len(got.users) == 0
    assert pd.isna(got.as_of)
