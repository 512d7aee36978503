"""The cold-start benchmark's bookkeeping: the shop as it was at the cut, and the hit rates."""

from __future__ import annotations

import pandas as pd
import pytest

from ml.bench.coldstart import hit_rates, shop_at

pytestmark = pytest.mark.unit


def test_the_warehouse_sees_every_user_but_only_the_events_before_the_cut(tmp_path):
    shop = tmp_path / "shop"
    shop.mkdir()
    times = pd.to_datetime(["2026-10-01", "2026-10-20", "2026-10-29", "2026-10-30"], utc=True)
    pd.DataFrame({"event_id": list("abcd"), "event_time": times, "user_id": ["u1", "u1", "u2", "u3"]}).to_parquet(
        shop / "events.parquet"
    )
    for name in ("items", "users"):
        pd.DataFrame({"id": [1]}).to_parquet(shop / f"{name}.parquet")
    cut, window, new_users = shop_at(shop, tmp_path / "landing", holdout_days=7)
    assert cut == pd.Timestamp("2026-10-23", tz="UTC")
    assert pd.read_parquet(tmp_path / "landing" / "events.parquet")["event_id"].tolist() == ["a", "b"]
    assert window["event_id"].tolist() == ["c", "d"]
    assert new_users == {"u2", "u3"}  # u1's first event is before the cut
    assert (tmp_path / "landing" / "users.parquet").exists() and (tmp_path / "landing" / "items.parquet").exists()


def test_a_hit_is_a_positive_event_on_a_shown_item_in_the_window():
    recs = pd.DataFrame(
        {
            "user_id": ["new1", "new1", "new2", "old"],
            "item_id": ["i1", "i2", "i3", "i4"],
            "cold_start": [True, True, True, False],
        }
    )
    window = pd.DataFrame(
        {
            "user_id": ["new1", "new2", "new2", "new3", "old"],
            "item_id": ["i2", "i9", "i3", "i1", "i4"],
            # new2's event on its shown item is an impression: not a hit
            "event_type": ["view", "purchase", "impression", "view", "click"],
        }
    )
    rates = hit_rates(recs, window, {"new1", "new2", "new3"})
    assert rates["new_users"] == {
        "users": 3,
        "with_slate": pytest.approx(2 / 3, abs=1e-4),
        "hit_rate": pytest.approx(1 / 3, abs=1e-4),
        "cold_start_slates": 2,
    }
    assert rates["users_with_history"]["users"] == 1 and rates["users_with_history"]["hit_rate"] == 1.0
