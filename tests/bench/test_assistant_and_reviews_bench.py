"""The assistant and review benchmarks: their bookkeeping, and each command end to end on the tiny shop."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ml.bench.assistant import CHAMPION_GRID, INTEREST_GRID, questions, ranked_matrix
from ml.bench.reviews import split_reviews
from ml.evaluate.metrics import ndcg_at_k, recall_at_k


@pytest.mark.unit
def test_a_search_is_answered_by_what_its_session_then_viewed_carted_or_bought():
    t = pd.Timestamp("2026-11-01 10:00", tz="UTC")
    m = pd.Timedelta(minutes=1)
    ev = pd.DataFrame(
        {
            "event_id": ["s1", "v0", "v1", "c1", "p1", "x1", "s2"],
            "event_time": [t, t - m, t + m, t + 2 * m, t + 3 * m, t + 4 * m, t + pd.Timedelta(days=3)],
            "session_id": ["A", "A", "A", "A", "A", "B", "C"],
            "user_id": ["u1"] * 6 + ["u2"],
            "event_type": ["search", "view", "view", "add_to_cart", "purchase", "view", "search"],
            "item_id": [None, "i0", "i1", "i2", "i1", "i9", None],
            "query": ["tents", None, None, None, None, None, "lamps"],
        }
    )
    qs = questions(ev, t - m, t + pd.Timedelta(days=1))
    assert qs["event_id"].tolist() == ["s1"]  # s2 is outside the window; it also has no answer
    assert qs["relevant"].iloc[0] == ["i1", "i2"]  # i0 was viewed before the search, i9 in another session
    shorter = ranked_matrix([np.array([5, 1, 2])], 10)  # a ranking shorter than k is padded with -1
    assert shorter[0, :4].tolist() == [5, 1, 2, -1]
    ndcg, recall = ndcg_at_k(shorter, [{1, 2}], 10), recall_at_k(shorter, [{1, 2}], 10)
    assert recall == 1.0 and 0 < ndcg < 1
    perfect = ranked_matrix([np.array([1, 2])], 10)
    assert (ndcg_at_k(perfect, [{1, 2}], 10), recall_at_k(perfect, [{1, 2}], 10)) == (1.0, 1.0)


@pytest.mark.unit
def test_reviews_split_by_time_and_refuse_a_shop_too_small():
    n = 50
    ev = pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "event_time": pd.Timestamp("2026-11-01") + pd.to_timedelta(np.arange(n)[::-1], unit="h"),
            "event_type": "review",
            "rating": 3,
            "review_text": "Fits perfectly.",
        }
    )
    train, test = split_reviews(ev, 0.2)
    assert len(train) == 40 and len(test) == 10 and train["event_time"].max() < test["event_time"].min()
    with pytest.raises(ValueError, match="too few reviews to split"):
        split_reviews(ev.head(20), 0.2)
    with pytest.raises(ValueError, match="--test-share must be in"):
        split_reviews(ev, 1.0)


@pytest.mark.slow
def test_both_benches_run_on_the_tiny_shop_and_write_json_and_png(tmp_path):
    from ml.cli import main

    assert main(["bench", "assistant", "--size", "tiny", "--max-questions", "40", "--out", str(tmp_path / "a")]) == 0
    a = json.loads((tmp_path / "a" / "assistant.json").read_text())
    assert set(a["methods"]) == {"bm25", "minilm", "minilm_personal", "minilm_personal_champion"}
    assert a["questions"]["test"] > 0 and a["champion_weight"] in CHAMPION_GRID
    known = a["known_interests"]
    assert known["chosen_weight"] in INTEREST_GRID
    for split in ("validation", "test"):
        curve = known[f"{split}_ndcg@10"]
        assert list(curve) == [str(w) for w in INTEREST_GRID] and all(0 <= v <= 1 for v in curve.values())
    # weight 0 adds nothing: the test curve starts at (d)'s own nDCG
    assert known["test_ndcg@10"]["0.0"] == round(a["methods"]["minilm_personal_champion"]["ndcg@10"], 4)
    assert all(0 <= r["ndcg@10"] <= 1 and 0 <= r["recall@10"] <= 1 for r in a["methods"].values())
    assert a["latency_ms"]["p95"] >= a["latency_ms"]["p50"] > 0 and (tmp_path / "a" / "assistant.png").exists()
    args = ["bench", "reviews", "--size", "tiny", "--epochs", "1", "--max-train", "40", "--out", str(tmp_path / "r")]
    assert main(args) == 0
    r = json.loads((tmp_path / "r" / "reviews.json").read_text())
    assert set(r["models"]) == {"tfidf_logreg", "minilm"}
    assert all(0 <= m["macro_f1"] <= 1 for m in r["models"].values()) and (tmp_path / "r" / "reviews.png").exists()
    # the aspects: every generated sentence counted once, placed and read within [0, 1]
    aspects = r["aspects"]
    assert aspects["aspect_sentences"] > 0 and aspects["other_sentences"] >= 0
    assert 0.8 <= aspects["aspect_recall"] <= 1 and aspects["others_without_aspect"] == 1.0
    assert all(0 <= m["aspect_tone_agreement"] <= 1 for m in r["models"].values())


@pytest.mark.unit
def test_aspect_detection_counts_the_generators_sentences():
    from ml.bench.reviews import aspect_detection

    got = aspect_detection(pd.Series(["Love it. Fits perfectly. Shipping took forever.", "Not a single flaw."]))
    # "Not a single flaw" is a looks phrasing with no cue word: an aspect sentence placed on none
    assert got == {"aspect_sentences": 3, "aspect_recall": 0.6667, "other_sentences": 1, "others_without_aspect": 1.0}
