"""Reading questions: constraints out, free text left, bad questions refused with a reason."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.assistant.query import MAX_CHARS, QuestionError, Vocabulary, parse
from ml.assistant.retrieval import BM25, allowed, personalised, top_k, user_vector

pytestmark = pytest.mark.unit

ITEMS = pd.DataFrame(
    {
        "item_id": ["i1", "i2", "i3", "i4"],
        "title": ["Trail hiking boots, waterproof", "Leather chelsea boots", "Two-person tent", "Outdoor tent, green"],
        "price": [110.0, 150.0, 90.0, 130.0],
        "brand": ["Bramble", "Aurelius", "Bramble", "Larkspur"],
        "colour": ["brown", "black", "green", "green"],
        "category": ["Boots", "Boots", "Tents", "Tents"],
        "category_path": [
            "Men > Shoes > Boots",
            "Women > Shoes > Boots",
            "Sports > Camping > Tents",
            "Sports > Camping > Tents",
        ],
    }
)
ITEMS["text"] = ITEMS["category"] + ". " + ITEMS["title"]
VOCAB = Vocabulary.from_items(ITEMS, ITEMS["text"].tolist(), ("outdoor", "classic"))


def test_prices_colours_brands_categories_and_styles_become_constraints():
    q = parse("Waterproof hiking BOOTS under 120", VOCAB)
    assert q.max_price == 120 and q.min_price is None and q.categories == ("Boots",)
    assert q.text == "waterproof hiking" and q.constraints == ("price at most 120", "category Boots")
    q = parse("green outdoor tent between 80 and 140 eur by bramble", VOCAB)
    assert (q.min_price, q.max_price) == (80, 140)
    assert q.colours == ("green",) and q.styles == ("outdoor",) and q.categories == ("Tents",)
    assert q.brands == ("bramble",)
    assert parse("tents over $100", VOCAB).min_price == 100
    assert parse("boots 100-150", VOCAB).max_price == 150


@pytest.mark.parametrize(
    ("question", "status", "reason"),
    [
        ("", 400, "the question is empty"),
        ("   ", 400, "the question is empty"),
        (None, 400, "the question is empty"),
        ("x" * 10_000, 413, "10,000 characters long"),
        ("boots over 200 under 100", 422, "contradict each other: at least 200 and at most 100"),
        ("wasserdichte Wanderschuhe", 422, "no word of the question matches the catalogue"),
        ("防水登山靴", 422, "no word of the question matches the catalogue"),
    ],
)
def test_bad_questions_get_a_reason_and_a_status(question, status, reason):
    with pytest.raises(QuestionError, match=reason) as err:
        parse(question, VOCAB)
    assert err.value.status == status
    assert MAX_CHARS < 10_000


def test_constraints_filter_and_bm25_ranks_by_the_words():
    q = parse("green tent under 140", VOCAB)
    assert allowed(ITEMS, q).tolist() == [False, False, True, True]
    bm25 = BM25().fit(ITEMS["text"].tolist())
    s = bm25.scores("waterproof boots")
    assert s.argmax() == 0 and s[2] == s[3] == 0.0
    assert top_k(s, np.array([False, True, True, True]), 2).tolist() == [1, 2]


def test_personalisation_lifts_items_like_the_users_history():
    emb = np.eye(4, dtype=np.float32)[:, :3]
    emb[3] = [0.0, 0.6, 0.8]
    cos = np.array([0.5, 0.5, 0.5, 0.5])
    user = user_vector(emb, np.array([2]), np.array([3.0]))
    ranked = top_k(personalised(cos, emb, user, 0.5), np.ones(4, bool), 4)
    assert ranked[:2].tolist() == [2, 3]  # the item the user chose, then the one most like it
    assert user_vector(emb, np.zeros(0, np.int64), np.zeros(0)) is None
    assert personalised(cos, emb, None, 0.5) is cos


def test_an_item_without_a_price_or_brand_is_described_by_the_facts_it_has():
    from ml.assistant.service import catalogue

    raw = pd.DataFrame(
        {
            "item_id": ["i1"],
            "title": ["Dome tent"],
            "description": [None],
            "attributes": ['{"color": "Green"}'],
            "brand": [None],
            "price": [None],
            "category_path": ["Sports > Camping > Tents"],
        }
    )
    items = catalogue(raw)
    assert items.loc[0, "colour"] == "green" and items.loc[0, "text"].startswith("Tents. Dome tent")

    class Bare:  # what _explain needs of an Assistant: the catalogue and the items' tags
        pass

    from ml.assistant.service import Assistant

    bare = Bare()
    bare.items, bare.item_tags = items, np.array([None], dtype=object)
    out = Assistant._explain(bare, 0, parse("tents", Vocabulary.from_items(items, items["text"].tolist())), set())
    assert out["price"] is None and out["brand"] is None
    assert out["why"] == "Dome tent, in Tents; meets category Tents."
