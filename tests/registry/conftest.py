from __future__ import annotations

import pandas as pd
import pytest


@pytest.fixture()
def marts_warehouse(warehouse, tiny_shop):
    """A real DuckDB warehouse holding ``marts.interaction_events`` (and a minimal
    ``marts.item_features``) built from the tiny shop's events, as dbt would."""
    from ml.columns import DEFAULT_EVENT_WEIGHTS

    ev = pd.read_parquet(tiny_shop / "events.parquet")
    ev = ev[ev["event_type"].isin(list(DEFAULT_EVENT_WEIGHTS)) & ev["item_id"].notna()]
    marts = pd.DataFrame(
        {
            "event_id": ev["event_id"].astype(str),
            "user_id": ev["user_id"].astype(str),
            "item_id": ev["item_id"].astype(str),
            "event_type": ev["event_type"].astype(str),
            "event_at": pd.to_datetime(ev["event_time"], utc=True),
            "weight": ev["event_type"].map(DEFAULT_EVENT_WEIGHTS).astype(float),
        }
    )
    items = pd.read_parquet(tiny_shop / "items.parquet")
    parts = items["category_path"].astype(str).str.split(" > ")
    feats = pd.DataFrame(
        {
            "item_id": items["item_id"].astype(str),
            "title": items["title"].astype(str),
            "category_path": items["category_path"].astype(str),
            "category_l1": parts.str[0],
            "category_l2": parts.str[1],
            "category_l3": parts.str[-1],
            "brand": items["brand"].astype(str),
        }
    )
    with warehouse.connect() as con:
        con.execute("create schema if not exists marts")
        con.register("_ev", marts)
        con.execute("create table marts.interaction_events as select * from _ev")
        con.register("_it", feats)
        con.execute("create table marts.item_features as select * from _it")
    return warehouse
