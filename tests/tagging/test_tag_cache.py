"""The tag cache of incremental backfills (``ml.item_tag_cache``) on both warehouses."""

from __future__ import annotations

import pandas as pd
import pytest

from ml.tagging import store
from ml.tagging.catalog import item_fingerprints
from ml.tagging.text import item_texts
from ml.tagging.vocabulary import Vocabulary

WAREHOUSES = [
    pytest.param("warehouse", marks=pytest.mark.unit, id="duckdb"),
    pytest.param("pg_warehouse", marks=pytest.mark.integration, id="postgres"),
]


def _tags(*rows: tuple[str, str, float, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["item_id", "tag", "score", "source"])


@pytest.mark.parametrize("fixture", WAREHOUSES)
def test_remembering_replaces_only_the_items_given(fixture, request):
    wh = request.getfixturevalue(fixture)
    assert store.cached_tags(wh, "v1").empty  # no table yet
    fp = pd.Series({"i1": "a", "i2": "b", "i3": "c"})
    written = store.remember_tags(
        wh, "v1", fp, _tags(("i1", "cat:x", 0.9, "model"), ("i1", "cat:y", 1.0, "label"), ("i2", "cat:x", 0.4, "model"))
    )
    assert written == 4  # i3 has no tag: one row without one
    store.remember_tags(wh, "v2", pd.Series({"i1": "z"}), _tags(("i1", "cat:z", 0.5, "model")))
    # i1 is tagged again (its text changed): its old rows go, i2 and i3 and version v2 stay
    store.remember_tags(wh, "v1", pd.Series({"i1": "a2"}), _tags(("i1", "cat:w", 0.7, "model")))
    got = store.cached_tags(wh, "v1").sort_values(["item_id", "tag"], na_position="last").reset_index(drop=True)
    assert got["item_id"].tolist() == ["i1", "i2", "i3"]
    assert got["fingerprint"].tolist() == ["a2", "b", "c"]
    assert got["tag"].tolist()[:2] == ["cat:w", "cat:x"] and pd.isna(got["tag"].iloc[2])
    assert store.cached_tags(wh, "v2")["tag"].tolist() == ["cat:z"]
    with pytest.raises(ValueError, match="invalid tagger version"):
        store.remember_tags(wh, "v1'; drop table ml.item_tags; --", fp, _tags())


def _fingerprints(items, labels, version, vocabulary):
    return item_fingerprints(items["item_id"], item_texts(items), labels, version, vocabulary)


@pytest.mark.unit
def test_a_fingerprint_follows_text_labels_version_and_vocabulary():
    vocabulary = Vocabulary.from_taxonomy()
    items = pd.DataFrame(
        {
            "item_id": ["i1", "i2"],
            "title": ["Wool scarf", "Trail boots"],
            "description": ["warm", None],
            "attributes": [None, '{"color": "navy"}'],
        }
    )
    labels = pd.DataFrame({"item_id": ["i2"], "tag": ["cat:men_hiking_boots"]})
    base = _fingerprints(items, labels, "v1", vocabulary)
    assert base.index.tolist() == ["i1", "i2"] and base.nunique() == 2
    assert _fingerprints(items, labels, "v1", vocabulary).equals(base)  # stable
    edited = items.assign(title=["Wool scarf", "Trail boots, waterproof"])
    assert (_fingerprints(edited, labels, "v1", vocabulary) != base).tolist() == [False, True]
    relabelled = pd.concat([labels, pd.DataFrame({"item_id": ["i1"], "tag": ["cat:women_scarves"]})])
    assert (_fingerprints(items, relabelled, "v1", vocabulary) != base).tolist() == [True, False]
    assert (_fingerprints(items, None, "v1", vocabulary) != base).tolist() == [False, True]
    assert (_fingerprints(items, labels, "v2", vocabulary) != base).all()
    frame = vocabulary.frame.copy()
    frame.loc[0, "description"] = "something else"
    assert (_fingerprints(items, labels, "v1", Vocabulary(frame)) != base).all()
