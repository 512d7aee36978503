"""Scoring the shop's reviews into ``ml.review_sentiment`` (``build_features``' ``score_reviews``).

Each run fits the review model (``model``, default the ``INTERESTFLOW_REVIEW_MODEL`` setting) on
every staged review that has both text and a rating (ratings as weak labels: ``labels``), then
scores the reviews with text that are not in the table yet, rated or not: a text without a
rating still gets a sentiment. Rows are keyed by ``event_id``, so a rerun adds nothing and a late
review is scored when it is staged; ``rescore=True`` scores every review again with the new fit
(after changing the model). The marts aggregate the table per item (``int_items_review_sentiment``
-> ``marts.item_features``); audiences read each user's latest review from it.

The same fit reads each scored review's sentences about an aspect (quality, fit, delivery,
value, looks: ``ml.reviews.aspects``) into ``ml.review_aspects``, written in the same
transaction; ``marts.item_review_aspects`` aggregates them per item and aspect.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from ml.reviews.aspects import aspect_rows
from ml.reviews.labels import LABELS, rating_labels, sentiment_score
from ml.warehouse import Warehouse

log = logging.getLogger(__name__)

REVIEW_SENTIMENT = "ml.review_sentiment"
REVIEW_ASPECTS = "ml.review_aspects"
STAGED_EVENTS = "staging.stg_shop__events"
DDL = """event_id varchar, user_id varchar, item_id varchar, reviewed_at timestamp, rating integer,
    label varchar, p_negative double precision, p_neutral double precision, p_positive double precision,
    sentiment double precision, model varchar, run_id varchar, scored_at timestamptz"""
ASPECTS_DDL = """event_id varchar, item_id varchar, sentence varchar, aspect varchar,
    sentiment double precision, run_id varchar"""
# a model needs this many rated reviews of each label it learns from
MIN_PER_LABEL = 5


def score_reviews(
    run_id: str = "manual",
    model: str | None = None,
    rescore: bool = False,
    warehouse: str | None = None,
) -> dict[str, Any]:
    """Fit the review model on the rated reviews and score the unscored ones (module docstring)."""
    from ml.reviews.models import make_model
    from ml.settings import settings

    name = model or settings().review_model
    reviewer = make_model(name)  # an unknown name fails before any work
    wh = Warehouse.from_env(warehouse)
    with wh.connect() as con:
        wh.ensure_schemas(con)
        wh.execute(con, f"create table if not exists {REVIEW_SENTIMENT} ({DDL})")
        wh.execute(con, f"create table if not exists {REVIEW_ASPECTS} ({ASPECTS_DDL})")
        con.commit()
    reviews = _staged_reviews(wh)
    rated = reviews[reviews["rating"].notna()]
    y = rating_labels(rated["rating"].to_numpy()) if len(rated) else np.zeros(0, dtype=np.int64)
    counts = np.bincount(y, minlength=len(LABELS))
    if len(rated) == 0 or counts.min() < MIN_PER_LABEL:
        reason = f"too few rated reviews to learn from: {dict(zip(LABELS, counts.tolist(), strict=True))}"
        log.info("score_reviews: %s (each label needs %d)", reason, MIN_PER_LABEL)
        return {"scored": 0, "reason": reason, "model": name, "run_id": run_id}
    done = set() if rescore else set(wh.query(f"select event_id from {REVIEW_SENTIMENT}")["event_id"])
    todo = reviews[~reviews["event_id"].isin(done)]
    if todo.empty:
        return {"scored": 0, "reason": "every staged review is scored", "model": name, "run_id": run_id}
    reviewer.fit(rated["review_text"].tolist(), y)
    proba = reviewer.predict_proba(todo["review_text"].tolist())
    rows = _rows(todo, proba, f"{name}:{len(rated)}", run_id)
    aspects = aspect_rows(todo, reviewer).assign(run_id=run_id)
    with wh.connect() as con:
        wh.begin(con)
        if rescore:  # every staged review is in ``rows``: the tables are replaced
            wh.execute(con, f"delete from {REVIEW_SENTIMENT}")
            wh.execute(con, f"delete from {REVIEW_ASPECTS}")
        wh.append_df(con, REVIEW_SENTIMENT, rows)
        if len(aspects):
            wh.append_df(con, REVIEW_ASPECTS, aspects)
        wh.commit(con)
    share = rows["label"].value_counts(normalize=True).round(3).to_dict()
    log.info("score_reviews: %d reviews scored with %s fitted on %d rated (%s)", len(rows), name, len(rated), share)
    return {
        "scored": len(rows),
        "fitted_on": len(rated),
        "model": name,
        "labels": share,
        "aspect_sentences": {str(a): int(n) for a, n in sorted(aspects["aspect"].value_counts().items())},
        "run_id": run_id,
    }


def _staged_reviews(wh: Warehouse) -> pd.DataFrame:
    """Staged review events with text (one row per event_id), oldest first."""
    with wh.connect(read_only=True) as con:
        if not wh.table_exists(con, "staging", "stg_shop__events"):
            raise LookupError(f"{STAGED_EVENTS} does not exist: run dbt's staging models first")
    return wh.query(
        f"select event_id, user_id, item_id, event_at as reviewed_at, rating, review_text from {STAGED_EVENTS} "
        "where event_type = 'review' and review_text is not null and trim(review_text) <> '' "
        "order by event_at, event_id"
    )


def _rows(todo: pd.DataFrame, proba: np.ndarray, model: str, run_id: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_id": todo["event_id"].astype(str).to_numpy(),
            "user_id": todo["user_id"].astype(str).to_numpy(),
            "item_id": todo["item_id"].astype(str).to_numpy(),
            "reviewed_at": pd.to_datetime(todo["reviewed_at"]).to_numpy(),
            "rating": pd.array(todo["rating"], dtype="Int64"),
            "label": np.asarray(LABELS, dtype=object)[proba.argmax(axis=1)],
            "p_negative": proba[:, 0],
            "p_neutral": proba[:, 1],
            "p_positive": proba[:, 2],
            "sentiment": sentiment_score(proba),
            "model": model,
            "run_id": run_id,
            "scored_at": datetime.now(UTC),
        }
    )
