"""Aspects of a review: what each sentence is about, and its tone.

A review is split into sentences (:func:`sentences`); a sentence is about the aspect whose cue
words (:data:`ASPECT_WORDS`, whole words, lower case) it uses most, ties going to the earlier
aspect, and about none when it uses no cue word ("Love it."). Its tone is the review model's
reading of the sentence alone (``ml.reviews.models``: the model fitted on whole reviews with the
ratings as weak labels), P(positive) - P(negative) in [-1, 1]. So a 4-star review that praises
the fit and complains about the delivery gives fit a positive and delivery a negative reading.

The cue words are a small general vocabulary of how shoppers name each aspect, written here and
not taken from the synthetic shop's phrasings; ``python -m ml bench reviews`` measures them
against the generator's own sentences.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ml.reviews.labels import sentiment_score

ASPECT_WORDS: dict[str, tuple[str, ...]] = {
    "quality": (
        "quality", "made", "built", "build", "durable", "sturdy", "solid", "stitching", "seams", "seam",
        "flimsy", "broke", "broken", "apart", "last", "lasted", "material",
    ),
    "fit": (
        "fit", "fits", "fitted", "fitting", "size", "sizes", "sizing", "small", "large", "big", "tight",
        "loose", "comfortable", "uncomfortable", "comfort",
    ),
    "delivery": (
        "delivery", "delivered", "shipping", "shipped", "arrived", "arrive", "package", "packaged",
        "packaging", "box", "courier", "late", "early", "dispatch",
    ),
    "value": (
        "price", "priced", "overpriced", "value", "money", "worth", "expensive", "bargain", "cost",
        "costs", "penny", "pay", "cheap",
    ),
    "looks": (
        "colour", "color", "colours", "colors", "looks", "look", "pictured", "picture", "photo",
        "style", "design", "faded", "pretty", "beautiful", "lovely",
    ),
}  # fmt: skip
ASPECTS = tuple(ASPECT_WORDS)
SENTENCE = re.compile(r"[^.!?]+[.!?]*")
WORD = re.compile(r"[a-z]+(?:-[a-z]+)*")
COLUMNS = ["event_id", "item_id", "sentence", "aspect", "sentiment"]


def sentences(text: str) -> list[str]:
    """The sentences of ``text``, stripped, empty ones left out."""
    return [s.strip() for s in SENTENCE.findall(str(text)) if s.strip(" .!?")]


def aspect_of(sentence: str) -> str | None:
    """The aspect whose cue words ``sentence`` uses most (ties: the earlier aspect); None for none."""
    words = WORD.findall(sentence.lower())
    hits = [sum(w in ASPECT_WORDS[a] for w in words) for a in ASPECTS]
    best = int(np.argmax(hits))
    return ASPECTS[best] if hits[best] else None


def aspect_rows(reviews: pd.DataFrame, model: Any) -> pd.DataFrame:
    """One row per sentence with an aspect of ``reviews`` (event_id, item_id, review_text):
    event_id, item_id, the sentence, its aspect and ``model``'s tone of it (module docstring)."""
    found: list[tuple[str, str, str, str]] = []
    for event_id, item_id, text in zip(reviews["event_id"], reviews["item_id"], reviews["review_text"], strict=True):
        for s in sentences(text):
            aspect = aspect_of(s)
            if aspect is not None:
                found.append((str(event_id), str(item_id), s, aspect))
    if not found:
        return pd.DataFrame(columns=COLUMNS)
    out = pd.DataFrame(found, columns=COLUMNS[:4])
    return out.assign(sentiment=sentiment_score(model.predict_proba(list(out["sentence"]))))


def tone_agreement(predicted: Sequence[float], praised: Sequence[bool]) -> float:
    """Share of sentences whose tone sign (> 0: praise) matches ``praised``."""
    p = np.asarray(predicted, dtype=np.float64) > 0
    return float((p == np.asarray(praised, dtype=bool)).mean()) if len(p) else float("nan")
