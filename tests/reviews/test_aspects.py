"""Aspects of reviews: which sentence is about what, and how each one reads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.reviews.aspects import ASPECTS, aspect_of, aspect_rows, sentences, tone_agreement
from ml.reviews.labels import rating_labels
from ml.reviews.models import TfidfSentiment
from ml.shop.reviews import review_texts

pytestmark = pytest.mark.unit


def test_sentences_and_their_aspects():
    text = "Love it! The size is right... Shipping took two weeks? Cheap for what you get"
    assert sentences(text) == ["Love it!", "The size is right...", "Shipping took two weeks?", "Cheap for what you get"]
    assert [aspect_of(s) for s in sentences(text)] == [None, "fit", "delivery", "value"]
    assert aspect_of("The colour faded and the stitching broke") == "quality"  # 2 quality cues vs 2 looks: earlier
    assert aspect_of("The colour faded, the design is dull, the seams held") == "looks"
    assert aspect_of("Sizeable") is None  # whole words only
    assert set(ASPECTS) == {"quality", "fit", "delivery", "value", "looks"}


def test_one_review_can_praise_one_aspect_and_criticise_another():
    rng = np.random.default_rng(0)
    ratings = rng.integers(1, 6, 3000)
    model = TfidfSentiment().fit(review_texts(rng, ratings).tolist(), rating_labels(ratings))
    reviews = pd.DataFrame(
        {
            "event_id": ["r1", "r2"],
            "item_id": ["i1", "i1"],
            "review_text": ["Love it. Fits perfectly. Shipping took forever.", "Recommended."],
        }
    )
    rows = aspect_rows(reviews, model)
    assert rows[["event_id", "aspect"]].values.tolist() == [["r1", "fit"], ["r1", "delivery"]]
    fit, delivery = rows["sentiment"]
    assert fit > 0 > delivery
    assert tone_agreement(rows["sentiment"], [True, False]) == 1.0
    assert aspect_rows(reviews.iloc[1:], model).empty
