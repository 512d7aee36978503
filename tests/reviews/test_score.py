"""Review sentiment: weak labels, the models, and scoring into ml.review_sentiment on DuckDB."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.reviews.labels import rating_labels, sentiment_score
from ml.reviews.models import TfidfSentiment, make_model
from ml.shop.reviews import review_texts

pytestmark = pytest.mark.unit


def test_ratings_become_three_labels_and_bad_ratings_are_refused():
    assert rating_labels(np.array([1, 2, 3, 4, 5])).tolist() == [0, 0, 1, 2, 2]
    with pytest.raises(ValueError, match=r"ratings must be 1\.\.5; got \[0\.0, 7\.0\]"):
        rating_labels(np.array([0, 3, 7]))
    assert sentiment_score(np.array([[0.7, 0.2, 0.1], [0.0, 0.0, 1.0]])).tolist() == pytest.approx([-0.6, 1.0])
    with pytest.raises(ValueError, match="unknown review model 'bert'"):
        make_model("bert")


def _reviews(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    ratings = rng.integers(1, 6, n)
    return review_texts(rng, ratings).tolist(), ratings


def test_the_baseline_reads_the_tone_the_generator_wrote():
    texts, ratings = _reviews(3000, 0)
    model = TfidfSentiment().fit(texts, rating_labels(ratings))
    test_texts, test_ratings = _reviews(1000, 1)
    proba = model.predict_proba(test_texts)
    assert proba.shape == (1000, 3) and np.allclose(proba.sum(axis=1), 1.0)
    # sentiment rises with the stars
    by_star = pd.Series(sentiment_score(proba)).groupby(test_ratings).mean()
    assert by_star.is_monotonic_increasing and by_star[1] < -0.3 and by_star[5] > 0.3
    assert (proba.argmax(axis=1) == rating_labels(test_ratings)).mean() > 0.5


def _staged(wh, events: pd.DataFrame) -> None:
    """``events`` as staging.stg_shop__events, on either engine."""
    with wh.connect() as con:
        wh.execute(con, "create schema if not exists staging")
        wh.execute(
            con,
            "create table staging.stg_shop__events (event_id varchar, user_id varchar, item_id varchar, "
            "event_type varchar, event_at timestamp, rating integer, review_text varchar)",
        )
        wh.append_df(con, "staging.stg_shop__events", events)
        con.commit()


@pytest.fixture(params=["duckdb", "postgres"])
def any_warehouse(request, tmp_path):
    from ml.warehouse import Warehouse

    if request.param == "duckdb":
        return Warehouse(f"duckdb:///{tmp_path / 'wh.duckdb'}")
    return request.getfixturevalue("pg_warehouse")


@pytest.mark.dbt
@pytest.mark.integration
def test_score_reviews_scores_each_review_once_rated_or_not(any_warehouse):
    from ml.reviews.score import REVIEW_ASPECTS, REVIEW_SENTIMENT, score_reviews

    wh = any_warehouse
    texts, ratings = _reviews(300, 2)
    events = pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(300)],
            "user_id": [f"u{i % 40}" for i in range(300)],
            "item_id": [f"i{i % 25}" for i in range(300)],
            "event_type": "review",
            "event_at": pd.Timestamp("2026-11-01") + pd.to_timedelta(np.arange(300), unit="h"),
            "rating": pd.array(ratings, dtype="Int64"),
            "review_text": texts,
        }
    )
    events.loc[7, "rating"] = pd.NA  # a text without stars still gets read
    _staged(wh, events)
    first = score_reviews(run_id="r1", model="tfidf_logreg", warehouse=wh.url)
    assert first["scored"] == 300 and first["fitted_on"] == 299
    rows = wh.query(f"select * from {REVIEW_SENTIMENT} order by event_id")
    assert rows["event_id"].is_unique and len(rows) == 300
    assert rows.loc[rows["event_id"] == "e7", "rating"].isna().all()
    assert set(rows["label"]) <= {"negative", "neutral", "positive"}
    assert np.allclose(rows[["p_negative", "p_neutral", "p_positive"]].sum(axis=1), 1.0)
    assert rows["sentiment"].between(-1, 1).all() and (rows["model"] == "tfidf_logreg:299").all()
    # a rerun adds nothing; a late review is scored alone; rescoring replaces every row once
    assert score_reviews(run_id="r1", model="tfidf_logreg", warehouse=wh.url)["scored"] == 0
    with wh.connect() as con:
        wh.execute(
            con,
            "insert into staging.stg_shop__events values ('late', 'u1', 'i1', 'review', "
            "timestamp '2026-12-20 00:00:00', 1, 'Poor quality. Not worth the money.')",
        )
        con.commit()
    late = score_reviews(run_id="r2", model="tfidf_logreg", warehouse=wh.url)
    assert late["scored"] == 1
    assert wh.query(f"select label from {REVIEW_SENTIMENT} where event_id = 'late'")["label"].tolist() == ["negative"]
    # its sentences about an aspect, read one by one, in the same transaction
    aspects = wh.query(f"select * from {REVIEW_ASPECTS} where event_id = 'late' order by aspect")
    assert aspects["aspect"].tolist() == ["quality", "value"] and (aspects["sentiment"] < 0).all()
    n_aspects = len(wh.query(f"select * from {REVIEW_ASPECTS}"))
    assert n_aspects == sum(first["aspect_sentences"].values()) + 2
    again = score_reviews(run_id="r3", model="tfidf_logreg", rescore=True, warehouse=wh.url)
    assert again["scored"] == 301
    assert len(wh.query(f"select * from {REVIEW_SENTIMENT}")) == 301
    assert len(wh.query(f"select * from {REVIEW_ASPECTS}")) == n_aspects  # replaced, not added


@pytest.mark.dbt
def test_too_few_rated_reviews_of_a_label_score_nothing_and_say_why(tmp_path):
    from ml.reviews.score import score_reviews
    from ml.warehouse import Warehouse

    wh = Warehouse(f"duckdb:///{tmp_path / 'wh.duckdb'}")
    one = {"event_id": "e1", "user_id": "u1", "item_id": "i1", "event_type": "review"}
    _staged(wh, pd.DataFrame([{**one, "event_at": pd.Timestamp("2026-11-01"), "rating": 5, "review_text": "Love it."}]))
    out = score_reviews(model="tfidf_logreg", warehouse=wh.url)
    assert out["scored"] == 0 and "too few rated reviews" in out["reason"] and "'negative': 0" in out["reason"]
