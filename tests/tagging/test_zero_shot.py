"""Zero-shot tags: a vocabulary tag without labelled items is assigned by description similarity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.tagging.baselines import LogisticRegressionTagger
from ml.tagging.catalog import TaggerArtifact, tag_items
from ml.tagging.vocabulary import Vocabulary
from ml.tagging.zero_shot import ZeroShotTagger

pytestmark = [pytest.mark.unit, pytest.mark.slow]

TRAVEL = "use:travel"
TRAVEL_DESCRIPTION = "Travel: luggage-friendly things to take on trips, holidays abroad and journeys"


def _items(n: int, seed: int = 3) -> pd.DataFrame:
    """Items of which about a third are described for travel, in varied words."""
    rng = np.random.default_rng(seed)
    travel_words = ["for trips away", "for your next getaway", "packs flat for flights", "for life on the road"]
    other_words = ["for the office", "for lazy sundays", "as a birthday present", "for the gym"]
    nouns = ["backpack", "scarf", "charger", "hoodie", "sneakers", "candle"]
    rows = []
    for i in range(n):
        is_travel = i % 3 == 0
        words = travel_words if is_travel else other_words
        noun = nouns[int(rng.integers(len(nouns)))]
        rows.append(
            {
                "item_id": f"I{i:04d}",
                "title": f"Northwind {noun}",
                "description": f"A {noun} {words[int(rng.integers(len(words)))]}.",
                "attributes": '{"color": "navy"}',
                "created_at": pd.Timestamp("2026-01-01"),
                "is_travel": is_travel,
            }
        )
    return pd.DataFrame(rows)


def _with_new_tag(vocabulary: Vocabulary) -> Vocabulary:
    extra = pd.DataFrame(
        [
            {
                "tag": TRAVEL,
                "kind": "use-case",
                "parent": "",
                "description": TRAVEL_DESCRIPTION,
                "vocabulary_version": "t",
            }
        ]
    )
    return Vocabulary(pd.concat([vocabulary.frame, extra], ignore_index=True))


def test_zero_shot_ranks_items_described_for_travel_above_the_others():
    from ml.tagging.text import item_texts

    items = _items(36)
    zs = ZeroShotTagger(threads=1).fit([TRAVEL], [TRAVEL_DESCRIPTION])
    sim = zs.predict_scores(item_texts(items))[:, 0]
    travel = items["is_travel"].to_numpy()
    # AUC: the chance that a travel item scores above a non-travel one (0.5 = no signal); the
    # product noun also moves the similarity (a backpack is "travel-ish"), so it is not 1
    auc = np.mean([a > b for a in sim[travel] for b in sim[~travel]])
    assert auc >= 0.7
    assert zs.tags_.tolist() == [TRAVEL] and zs.tag_embeddings_.shape == (1, 384)


def test_a_tag_added_to_the_vocabulary_without_labels_is_assigned_zero_shot(corpus, vocabulary):
    texts, labels = corpus
    tagger = LogisticRegressionTagger().fit(texts, labels, vocabulary)
    vocab = _with_new_tag(vocabulary)
    artifact = TaggerArtifact(tagger=tagger, vocabulary_version="t")  # default threshold
    assert TRAVEL in artifact.zero_shot_tags(vocab)
    assert not set(map(str, tagger.tags_)) & set(artifact.zero_shot_tags(vocab))
    items = _items(30)
    labels_df = pd.DataFrame({"item_id": ["I0001"], "tag": ["cat:home_lamps"]})
    rows = tag_items(items, artifact, vocab, labels=labels_df, batch_size=8, threads=1)
    assert set(rows["source"]) == {"label", "model", "zero_shot"}
    zs = rows[rows["source"] == "zero_shot"]
    assert set(zs["tag"]) <= set(artifact.zero_shot_tags(vocab))
    travel_ids = set(items.loc[items["is_travel"], "item_id"])
    got = set(zs.loc[zs["tag"] == TRAVEL, "item_id"])
    assert got, "the new tag was assigned to no item"
    assert len(got & travel_ids) / len(got) >= 0.6  # precision; a third of the items are travel items
    assert len(got & travel_ids) / len(travel_ids) >= 0.4  # recall
    # the labelled item carries its label instead of model tags, and zero-shot still applies
    i1 = rows[rows["item_id"] == "I0001"]
    assert set(i1.loc[i1["source"] == "label", "tag"]) == {"cat:home_lamps"}
    assert "model" not in set(i1["source"])
    # every other item has exactly one model tag per exclusive kind
    model_rows = rows[rows["source"] == "model"]
    per_kind = model_rows.assign(kind=model_rows["tag"].map(vocab.kind)).groupby(["item_id", "kind"]).size()
    assert (per_kind == 1).all()
