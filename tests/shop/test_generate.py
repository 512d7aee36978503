import json

import pandas as pd
import pytest

from ml import columns as C
from ml.shop.generate import generate, write_shop
from ml.shop.taxonomy import vocabulary, vocabulary_csv

pytestmark = pytest.mark.unit


def test_same_seed_gives_identical_shop():
    a, b = generate("tiny", seed=3), generate("tiny", seed=3)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name])


def test_different_seeds_differ():
    assert not generate("tiny", seed=1)["events"].equals(generate("tiny", seed=2)["events"])


def test_landing_contract_columns_and_rules():
    shop = generate("tiny", seed=7)
    for table, spec in C.LANDING.items():
        assert list(shop[table].columns) == list(spec), table
    ev, items = shop["events"], shop["items"]
    assert ev["event_id"].is_unique and items["item_id"].is_unique
    assert set(ev["event_type"]) <= set(C.EVENT_TYPES)
    assert str(ev["event_time"].dt.tz) == "UTC"
    needs_item = ev["event_type"].isin(C.ITEM_EVENT_TYPES)
    assert ev.loc[needs_item, "item_id"].notna().all()
    assert ev.loc[ev["event_type"] == "search", "item_id"].isna().all()
    assert ev.loc[ev["event_type"] == "search", "query"].notna().all()
    assert set(ev["item_id"].dropna()) <= set(items["item_id"])
    assert ev["rating"].dropna().between(1, 5).all()
    assert (ev.loc[ev["event_type"] == "purchase", "quantity"] >= 1).all()
    assert ev.loc[ev["event_type"].isin(["impression", "click"]), "recommendation_id"].notna().all()
    assert items["price"].gt(0).all()
    assert items["category_path"].str.count(" > ").eq(2).all()
    for a in items["attributes"]:
        assert isinstance(json.loads(a), dict)


def test_ground_truth_has_dormant_interests_and_stays_out_of_landing(tmp_path):
    counts = write_shop(tmp_path, "tiny", seed=7)
    assert counts["events"] > 1000
    landing = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    assert landing == ["events.parquet", "items.parquet", "users.parquet"]
    truth = pd.read_parquet(tmp_path / "_ground_truth" / "user_interests.parquet")
    assert {"active", "dormant"} <= set(truth["status"])
    # dormant interests never drive sessions, so their share of views is far below active ones
    vocab = {t.tag for t in vocabulary()}
    assert set(truth["tag"]) <= vocab


def test_sizes_scale():
    tiny = generate("tiny", seed=1)
    small = generate("small", seed=1)
    assert len(small["events"]) > 5 * len(tiny["events"])
    assert len(small["users"]) == 1000 and len(small["items"]) == 500


def test_vocabulary_seed_matches_taxonomy():
    from ml.config import DBT_DIR

    seed = DBT_DIR / "seeds" / "tag_vocabulary.csv"
    assert seed.read_text() == vocabulary_csv(), (
        "regenerate with: python -m ml shop vocabulary > dbt/seeds/tag_vocabulary.csv"
    )
