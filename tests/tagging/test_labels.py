"""Label files: checked row by row against the catalogue and vocabulary; loading is idempotent."""

from __future__ import annotations

import pandas as pd
import pytest

from ml.tagging.data import LabelFileError, import_labels, is_test_item, load_labels, training_set

pytestmark = pytest.mark.unit


def test_loading_labels_twice_keeps_one_copy(shop_warehouse, tiny_shop):
    path = tiny_shop / "_ground_truth" / "item_tags.parquet"
    first = import_labels(path, shop_warehouse)
    again = import_labels(path, shop_warehouse)
    stored = load_labels(shop_warehouse)
    truth = pd.read_parquet(path)
    assert first == again
    assert len(stored) == len(truth.drop_duplicates()) == first["labels"]
    assert not stored.duplicated().any()


def test_fraction_keeps_a_stable_share_of_items(shop_warehouse, tiny_shop):
    path = tiny_shop / "_ground_truth" / "item_tags.parquet"
    half = import_labels(path, shop_warehouse, fraction=0.5)
    n_items = pd.read_parquet(path)["item_id"].nunique()
    assert 0.25 * n_items < half["items"] < 0.75 * n_items
    assert import_labels(path, shop_warehouse, fraction=0.5) == half


def test_a_bad_label_file_is_rejected_whole_naming_file_row_and_rule(shop_warehouse, tmp_path):
    bad = tmp_path / "labels.csv"
    bad.write_text("item_id,tag\nI000001,cat:women_sandals\nNOPE,cat:women_sandals\nI000002,cat:spaceships\n")
    with pytest.raises(LabelFileError) as err:
        import_labels(bad, shop_warehouse)
    msg = str(err.value)
    assert "labels.csv" in msg and "row 2" in msg and "known_item" in msg and "row 3" in msg and "known_tag" in msg
    assert load_labels(shop_warehouse).empty  # nothing of the file was written
    missing = tmp_path / "labels.jsonl"
    missing.write_text('{"item": "I000001", "tag": "x"}\n')
    with pytest.raises(LabelFileError, match="missing required columns"):
        import_labels(missing, shop_warehouse)


def test_split_is_stable_and_rare_tags_are_left_to_zero_shot(shop_warehouse, tiny_shop, vocabulary):
    from ml.tagging.data import load_catalog

    import_labels(tiny_shop / "_ground_truth" / "item_tags.parquet", shop_warehouse)
    catalog, labels = load_catalog(shop_warehouse), load_labels(shop_warehouse)
    ids = catalog["item_id"].tolist()
    assert (is_test_item(ids, 0.3) == is_test_item(list(reversed(ids)), 0.3)[::-1]).all()
    data = training_set(catalog, labels, vocabulary, min_labels=4, test_share=0.3)
    counts = labels[labels["item_id"].isin(set(data.part(test=False)[2]))].groupby("tag").size()
    assert set(data.learnable_tags) == set(counts[counts >= 4].index)
    assert set(data.zero_shot_tags) == set(vocabulary.taggable()) - set(data.learnable_tags)
    assert all(set(ls) <= set(data.learnable_tags) for ls in data.labels)
