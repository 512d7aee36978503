"""``read_candidate_inputs`` on a real DuckDB warehouse: interactions are read only for users
who have no interest profile (they only derive those users' known tags)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ml.explore.candidates import build_contexts
from ml.explore.store import read_candidate_inputs
from ml.warehouse import Warehouse

pytestmark = pytest.mark.unit

AS_OF = pd.Timestamp("2026-10-31 12:00")


@pytest.fixture
def wh(tmp_path: Path) -> Warehouse:
    wh = Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    items = pd.DataFrame(
        {
            "item_id": ["a1", "a2", "b1", "b2"],
            "category_path": ["Women > Shoes > Boots"] * 2 + ["Men > Tops > Shirts"] * 2,
            "category_l1": ["Women", "Women", "Men", "Men"],
            "category_l3": ["Boots", "Boots", "Shirts", "Shirts"],
            "n_users": [5, 3, 2, 1],
        }
    )
    inter = pd.DataFrame(
        {
            "user_id": ["u1", "u2", "u2"],
            "item_id": ["a1", "b1", "a2"],
            "decayed_weight": [2.0, 1.0, 0.5],
            "n_events": [2, 1, 1],
            "last_at": [AS_OF, AS_OF, AS_OF],
        }
    )
    events = pd.DataFrame(
        {"user_id": ["u1", "u2"], "item_id": ["a1", "b1"], "event_type": ["view", "purchase"], "event_at": [AS_OF] * 2}
    )
    with wh.connect() as con:
        wh.execute(con, "create schema if not exists marts")
        wh.execute(con, "create schema if not exists ml")
        for name, df in (
            ("marts.item_features", items),
            ("marts.interactions", inter),
            ("marts.interaction_events", events),
        ):
            con.register("_df", df)
            con.execute(f"create table {name} as select * from _df")
            con.unregister("_df")
    return wh


def _profiles(wh: Warehouse, users: list[str]) -> None:
    df = pd.DataFrame(
        {
            "user_id": users,
            "tag": ["cat:men_shirts"] * len(users),
            "weight": [1.0] * len(users),
            "evidence_count": [3] * len(users),
            "last_seen": [AS_OF] * len(users),
            "uncertainty": [0.3] * len(users),
            "status": ["known"] * len(users),
        }
    )
    with wh.connect() as con:
        con.register("_df", df)
        con.execute("create or replace table ml.user_interest_profiles as select * from _df")
        con.unregister("_df")


def _champion() -> pd.DataFrame:
    return pd.DataFrame({"user_id": ["u1", "u2"], "item_id": ["a2", "a1"], "score": [0.9, 0.8], "reason": [None, None]})


def test_interactions_are_skipped_when_every_user_has_a_profile(wh: Warehouse) -> None:
    _profiles(wh, ["u1", "u2"])
    inp = read_candidate_inputs(wh, _champion(), ("purchase",), pd.DataFrame())
    assert inp.interactions.empty and list(inp.interactions.columns) == [
        "user_id",
        "item_id",
        "weight",
        "n_events",
        "last_at",
    ]
    u1, _ = build_contexts(inp, ["u1", "u2"])
    assert [t for t, k in zip(u1.tags, u1.known, strict=True) if k] == ["cat:men_shirts"]
    assert inp.excluded.to_dict("records") == [{"user_id": "u2", "item_id": "b1"}]


def test_interactions_are_read_when_a_user_has_no_profile(wh: Warehouse) -> None:
    _profiles(wh, ["u1"])
    inp = read_candidate_inputs(wh, _champion(), ("purchase",), pd.DataFrame())
    assert len(inp.interactions) == 3
    _, u2 = build_contexts(inp, ["u1", "u2"])
    # u2's known tags come from its history: shirts (weight 1.0; b1 bought, b2 left) before boots
    assert [t for t, k in zip(u2.tags, u2.known, strict=True) if k] == ["cat:men_shirts", "cat:women_boots"]
