"""Cross-sell from category rules (``ml.recommend.cross_sell``): which item, where, for whom."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from ml.recommend.cross_sell import CrossSellSettings, cross_sell, reason, recent_purchase_category

pytestmark = pytest.mark.unit

# items 0-3 in Shoes, 4-5 in Socks, 6-7 in Laces, 8-9 in Hats
CATEGORY = np.array(["Shoes"] * 4 + ["Socks"] * 2 + ["Laces"] * 2 + ["Hats"] * 2, dtype=object)
RULES = pd.DataFrame(
    {
        "antecedent": ["Shoes", "Shoes", "Shoes", "Hats"],
        "consequent": ["Socks", "Laces", "Hats", "Shoes"],
        "lift": [3.0, 2.0, 1.1, 2.5],
    }
)
POPULAR = np.array([0, 1, 5, 4, 7, 6, 8, 9, 2, 3])


def test_a_recent_buyer_gets_the_best_lift_category_item_at_the_position_and_the_rest_moves_down():
    candidates = np.array([[0, 1, 2, 3, 4, 6]])  # top-3 = shoes; item 4 (socks) is a later candidate
    sold = cross_sell(
        candidates,
        3,
        np.array(["Shoes"], dtype=object),
        CATEGORY,
        RULES,
        POPULAR,
        settings=CrossSellSettings(position=2),
    )
    assert sold.idx.tolist() == [[0, 4, 1]]  # 2 leaves the top-3
    assert sold.slot.tolist() == [1] and sold.gained.tolist() == [True]
    assert (sold.antecedent[0], sold.consequent[0]) == ("Shoes", "Socks")
    assert reason("Women > Shoes", "Women > Socks") == "you bought in Shoes; shoppers who do often buy Socks"


def test_popular_item_fills_in_and_excluded_items_never_appear():
    candidates = np.array([[0, 1, 2, 3]])  # no socks among the candidates
    excluded = sp.csr_matrix(np.eye(1, 10, 5))  # item 5, the most popular sock, was bought
    sold = cross_sell(candidates, 3, np.array(["Shoes"], dtype=object), CATEGORY, RULES, POPULAR, excluded)
    assert sold.idx.tolist() == [[0, 1, 4]]  # position 3 (default): sock 4, the popular one not bought
    assert 5 not in sold.idx[0]


def test_a_slate_that_reaches_the_best_category_gets_the_next_and_weak_rules_are_ignored():
    candidates = np.array([[4, 0, 1, 6, 8]])  # already shows socks
    sold = cross_sell(candidates, 3, np.array(["Shoes"], dtype=object), CATEGORY, RULES, POPULAR)
    assert sold.consequent[0] == "Laces" and sold.idx[0].tolist() == [4, 0, 6]
    shown_laces = np.array([[4, 6, 0, 1, 8]])  # socks and laces shown; hats' lift 1.1 < 1.5
    sold = cross_sell(shown_laces, 3, np.array(["Shoes"], dtype=object), CATEGORY, RULES, POPULAR)
    assert not sold.gained.any() and sold.idx.tolist() == [[4, 6, 0]]
    weak = cross_sell(
        shown_laces,
        3,
        np.array(["Shoes"], dtype=object),
        CATEGORY,
        RULES,
        POPULAR,
        settings=CrossSellSettings(min_lift=1.0),
    )
    assert weak.consequent[0] == "Hats" and weak.idx[0].tolist() == [4, 6, 8]


def test_users_without_a_recent_purchase_or_a_rule_keep_their_slate():
    candidates = np.array([[0, 1, 2, 3], [8, 9, 0, 1], [4, 5, 6, 7]])
    bought = np.array([None, "Hats", "Socks"], dtype=object)  # no rule from Socks
    sold = cross_sell(candidates, 3, bought, CATEGORY, RULES, POPULAR)
    assert sold.idx[0].tolist() == [0, 1, 2] and sold.idx[2].tolist() == [4, 5, 6]
    assert sold.idx[1].tolist() == [8, 9, 0]  # Hats -> Shoes, but the slate already shows shoes
    assert sold.slot.tolist() == [-1, -1, -1]


def test_recent_purchase_is_the_latest_one_inside_the_window():
    purchases = pd.DataFrame(
        {
            "user_id": ["a", "a", "b", "c"],
            "category": ["Shoes", "Hats", "Socks", "Laces"],
            "event_at": pd.to_datetime(["2026-10-20", "2026-10-25", "2026-09-01", "2026-11-02"], utc=True),
        }
    )
    as_of = pd.Timestamp("2026-10-30", tz="UTC")
    got = recent_purchase_category(purchases, np.array(["a", "b", "c", "d"]), as_of, window_days=14)
    assert got.tolist() == ["Hats", None, None, None]  # b: too old; c: after as_of; d: none


def test_settings_and_inputs_are_checked():
    with pytest.raises(ValueError, match="position must be >= 1"):
        CrossSellSettings(position=0)
    with pytest.raises(ValueError, match="window_days must be > 0"):
        CrossSellSettings(window_days=0)
    with pytest.raises(ValueError, match="need at least k=3 candidates"):
        cross_sell(np.array([[0, 1]]), 3, np.array([None], dtype=object), CATEGORY, RULES, POPULAR)


def test_the_bench_reports_the_champion_and_each_position(tmp_path):
    from ml.cli import main

    assert main(["bench", "crosssell", "--size", "tiny", "--positions", "1,10", "--out", str(tmp_path)]) == 0
    payload = json.loads((tmp_path / "crosssell.json").read_text())
    assert set(payload["results"]) == {"champion", "cross_sell@1", "cross_sell@10"}
    for name in ("cross_sell@1", "cross_sell@10"):
        r = payload["results"][name]
        assert 0 <= r["slates_gained_share"] <= 1 and r["cross_sold_items"] == round(
            r["slates_gained_share"] * payload["eval_users"]
        )
    assert (tmp_path / "crosssell.png").stat().st_size > 0
