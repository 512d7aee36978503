"""Answering a shopper's question from the warehouse (``python -m ml assistant ask`` and the
Interestflow page's ``POST /interestflow/api/assistant``).

The catalogue comes from ``staging.stg_shop__items`` (title, description, attributes, brand,
price, category path); item embeddings from ``ml.item_embeddings`` (``ml.assistant.index``, kept
current by ``build_features``); the user's history from ``marts.interactions`` (decayed weights).
Each answer item carries one sentence built from facts only: its title, price, brand and
category, the constraints it meets and, when the user has history in its category, that interest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml.assistant.query import Question, QuestionError, Vocabulary, parse
from ml.assistant.retrieval import DEFAULT_PERSONAL_WEIGHT, allowed, encode, personalised, top_k, user_vector
from ml.tagging.text import item_text

ITEMS = "staging.stg_shop__items"
INTERACTIONS = "marts.interactions"


def _colour(attributes: Any) -> str | None:
    if not isinstance(attributes, str) or not attributes.strip():
        return None
    try:
        data = json.loads(attributes)
    except json.JSONDecodeError:
        return None
    value = data.get("color", data.get("colour")) if isinstance(data, dict) else None
    return str(value).lower() if value else None


def catalogue(items: pd.DataFrame) -> pd.DataFrame:
    """The assistant's view of a catalogue frame (item_id, title, description, attributes, brand,
    price, category_path): the facts it may state and the text it retrieves on (the leaf category
    first, then title, description and attributes)."""
    leaf = items["category_path"].astype(str).str.split(" > ").str[-1].str.strip()
    desc = items["description"] if "description" in items else pd.Series(None, index=items.index)
    attrs = items["attributes"] if "attributes" in items else pd.Series(None, index=items.index)
    text = [f"{c}. {item_text(t, d, a)}" for c, t, d, a in zip(leaf, items["title"], desc, attrs, strict=True)]
    return pd.DataFrame(
        {
            "item_id": items["item_id"].astype(str).to_numpy(),
            "title": items["title"].astype(str).to_numpy(),
            "price": pd.to_numeric(items["price"], errors="coerce").to_numpy(np.float64),
            "brand": items["brand"].astype(str).to_numpy(),
            "colour": [_colour(a) for a in attrs],
            "category": leaf.to_numpy(),
            "category_path": items["category_path"].astype(str).to_numpy(),
            "text": text,
        }
    ).reset_index(drop=True)


@dataclass
class Answer:
    user_id: str
    question: Question
    items: list[dict[str, Any]]
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "understood": list(self.question.constraints),
            "text": self.question.text,
            "items": self.items,
            "message": self.message,
        }


class Assistant:
    """Loaded once per process: the catalogue, its embeddings and vocabulary, the encoder.

    ``source`` answers ``query(sql, params)`` with a frame: a :class:`~ml.warehouse.Warehouse`
    (the command line) or the Interestflow page's read session (a DuckDB snapshot or live
    PostgreSQL); the user's history is read through it at each question."""

    def __init__(self, source: Any, personal_weight: float = DEFAULT_PERSONAL_WEIGHT):
        from ml.assistant.index import ITEM_EMBEDDINGS, embeddings_for
        from ml.shop import taxonomy as tx
        from ml.tagging import encoder as enc

        self.source = source
        self.personal_weight = personal_weight
        try:
            raw = source.query(
                f"select item_id, title, description, attributes, brand, price, category_path from {ITEMS}", None
            )
            stored = source.query(f"select item_id, text_sha, embedding from {ITEM_EMBEDDINGS}", None)
        except Exception as exc:  # the engines raise their own catalog errors for a missing table
            raise LookupError(
                f"the assistant needs {ITEMS} and {ITEM_EMBEDDINGS}: run build_features "
                f"(or python -m ml assistant index) first ({type(exc).__name__})"
            ) from exc
        self.items = catalogue(raw)
        self.index = {i: n for n, i in enumerate(self.items["item_id"])}
        self.embeddings = embeddings_for(self.items, stored)
        self.vocabulary = Vocabulary.from_items(self.items, self.items["text"].tolist(), tuple(tx.STYLES))
        self.encoder = enc.load()

    def ask(self, user_id: str, question: object, k: int = 5) -> Answer:
        """Up to ``k`` items for ``question``, personalised for ``user_id``; raises
        :class:`QuestionError` (with its HTTP status) for a question it cannot answer."""
        q = parse(question, self.vocabulary)
        if not 1 <= int(k) <= 50:
            raise QuestionError(f"k must be between 1 and 50, got {k}")
        rows, weights, leaves = self._history(user_id)
        mask = allowed(self.items, q)
        if not mask.any():
            return Answer(user_id, q, [], "nothing in the catalogue meets " + ", ".join(q.constraints))
        cos = self.embeddings @ encode(self.encoder, [q.text])[0]
        uv = user_vector(self.embeddings, rows, weights)
        ranked = top_k(personalised(cos, self.embeddings, uv, self.personal_weight), mask, int(k))
        items = [self._explain(int(i), q, leaves) for i in ranked]
        message = "" if uv is not None else "no history for this user yet: ranked by the question alone"
        return Answer(user_id, q, items, message)

    def _history(self, user_id: str) -> tuple[np.ndarray, np.ndarray, set[str]]:
        """Item rows, decayed weights and leaf categories of the user's interactions."""
        hist = self.source.query(
            f"select item_id, decayed_weight from {INTERACTIONS} where user_id = ?", [str(user_id)]
        )
        hist = hist[hist["item_id"].astype(str).isin(self.index)]
        rows = hist["item_id"].astype(str).map(self.index).to_numpy(np.int64)
        leaves = set(self.items["category"].to_numpy()[rows])
        return rows, hist["decayed_weight"].to_numpy(np.float64), leaves

    def _explain(self, i: int, q: Question, leaves: set[str]) -> dict[str, Any]:
        it = self.items.iloc[i]
        why = [f"{it['title']} at {it['price']:.2f}, by {it['brand']}, in {it['category']}"]
        met = [c for c in q.constraints]
        if met:
            why.append("meets " + ", ".join(met))
        if it["category"] in leaves:
            why.append(f"you have shown interest in {it['category']}")
        return {
            "item_id": it["item_id"],
            "title": it["title"],
            "price": float(it["price"]),
            "brand": it["brand"],
            "category": it["category"],
            "why": "; ".join(why) + ".",
        }
