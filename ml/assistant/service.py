"""Answering a shopper's question from the warehouse (``python -m ml assistant ask`` and the
Interestflow page's ``POST /interestflow/api/assistant``).

The catalogue comes from ``staging.stg_shop__items`` (title, description, attributes, brand,
price, category path); item embeddings from ``ml.item_embeddings`` (``ml.assistant.index``, kept
current by ``build_features``); the user's history from ``marts.interactions`` (decayed weights).
Each answer item carries one sentence built from facts only: its title, price, brand and
category, the constraints it meets and, when the user has history in its category, that interest.
Ranking: the question's MiniLM cosine, plus ``personal_weight`` x the cosine with the user's
history vector, plus ``champion_weight`` x the item's place among the allowed items in the
champion recommender's scores for this user (``registry.champions``; its artifact is loaded once
per assistant; no champion: no such term). Both weights were chosen by ``python -m ml bench
assistant`` on validation questions.
The last slot may explore one of the user's candidate interests (``ml.assistant.explore``); every
answer has a ``recommendation_id``, positions and exact propensities, and is appended to the
assistant's slate log (``ml.assistant.log``) so the shop's impressions and clicks on it reach
``marts.bandit_feedback``.
"""

from __future__ import annotations

import json
import logging
import pickle
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml.assistant.explore import explore_last_slot
from ml.assistant.log import RUN_ID as ASSISTANT_RUN_ID
from ml.assistant.log import append as append_answer
from ml.assistant.query import Question, QuestionError, Vocabulary, parse
from ml.assistant.retrieval import (
    DEFAULT_CHAMPION_WEIGHT,
    DEFAULT_PERSONAL_WEIGHT,
    allowed,
    champion_scores,
    encode,
    personalised,
    rank_share,
    top_k,
    user_vector,
)
from ml.tagging.text import item_text

ITEMS = "staging.stg_shop__items"
# what the assistant reads of the catalogue (``catalogue`` turns it into facts and retrieval text)
CATALOGUE_SQL = f"select item_id, title, description, attributes, brand, price, category_path from {ITEMS}"
INTERACTIONS = "marts.interactions"
ITEM_FEATURES = "marts.item_features"
PROFILES = "ml.user_interest_profiles"
POLICY = "assistant"
log = logging.getLogger(__name__)
# the recommender champion's version and artifact (what ``retrain_models``' gate promoted last)
CHAMPION_SQL = (
    "select c.version_id, v.artifact_path from registry.champions c join registry.model_versions v "
    "on v.version_id = c.version_id where c.family = 'recommender' order by c.promoted_at desc limit 1"
)


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
            "brand": [b if isinstance(b, str) else None for b in items["brand"]],
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
    recommendation_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "recommendation_id": self.recommendation_id,
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

    def __init__(
        self,
        source: Any,
        personal_weight: float = DEFAULT_PERSONAL_WEIGHT,
        explore_share: float | None = None,
        log_folder: Any = None,
        champion_weight: float = DEFAULT_CHAMPION_WEIGHT,
    ):
        from ml.assistant.index import ITEM_EMBEDDINGS, embeddings_for
        from ml.settings import settings
        from ml.shop import taxonomy as tx
        from ml.tagging import encoder as enc

        self.source = source
        self.personal_weight = personal_weight
        self.champion_weight = champion_weight
        self.explore_share = settings().assistant_explore_share if explore_share is None else float(explore_share)
        self.log_folder = log_folder
        raw = self._read(CATALOGUE_SQL)
        stored = self._read(f"select item_id, text_sha, embedding from {ITEM_EMBEDDINGS}")
        if raw is None or stored is None:
            raise LookupError(
                f"the assistant needs {ITEMS} and {ITEM_EMBEDDINGS}: run build_features "
                "(or python -m ml assistant index) first"
            )
        self.items = catalogue(raw)
        self.index = {i: n for n, i in enumerate(self.items["item_id"])}
        self.embeddings = embeddings_for(self.items, stored)
        self.vocabulary = Vocabulary.from_items(self.items, self.items["text"].tolist(), tuple(tx.STYLES))
        self.encoder = enc.load()
        # what the exploration slot needs (each item's category tag, the users' candidate
        # interests) and the history: a warehouse before its first features run has neither
        feats = self._read(f"select item_id, category_tag from {ITEM_FEATURES}")
        self.has_profiles = (
            feats is not None and self._read(f"select user_id, tag, status from {PROFILES} where 1 = 0") is not None
        )
        self.has_history = self._read(f"select item_id, decayed_weight from {INTERACTIONS} where 1 = 0") is not None
        tag_of = (
            dict(zip(feats["item_id"].astype(str), feats["category_tag"], strict=True)) if feats is not None else {}
        )
        found = [tag_of.get(i) for i in self.items["item_id"]]
        self.item_tags = np.array([t if isinstance(t, str) else None for t in found], dtype=object)
        self.champion_version, self.champion = self._champion()

    def _champion(self) -> tuple[str | None, tuple[Any, np.ndarray] | None]:
        """(version id, (model, each catalogue item's column in it)) of the recommender champion;
        (None, None) before one is promoted or when its artifact cannot be read."""
        from ml.registry import load_artifact

        row = self._read(CHAMPION_SQL) if self.champion_weight else None
        if row is None or row.empty:
            return None, None
        version = str(row["version_id"].iloc[0])
        try:
            art = load_artifact(row["artifact_path"].iloc[0])
        except (OSError, ValueError, KeyError, pickle.UnpicklingError) as exc:
            log.warning("assistant: champion %s not loaded (%s); answers go without its scores", version, exc)
            return version, None
        columns = pd.Index([str(i) for i in art["item_ids"]]).get_indexer(self.items["item_id"].astype(str))
        return version, (art["model"], columns)

    def _read(self, sql: str) -> pd.DataFrame | None:
        """The rows of ``sql``, or None when its table does not exist yet."""
        try:
            return self.source.query(sql, None)
        except Exception:  # the engines raise their own catalog errors for a missing table
            return None

    def _candidate_tags(self, source: Any, user_id: str) -> set[str]:
        if not self.has_profiles:
            return set()
        df = source.query(
            f"select distinct tag from {PROFILES} where user_id = ? and status = 'candidate'", [str(user_id)]
        )
        return set(df["tag"].astype(str))

    def ask(self, user_id: str, question: object, k: int = 5, source: Any = None) -> Answer:
        """Up to ``k`` items for ``question``, personalised for ``user_id``; raises
        :class:`QuestionError` (with its HTTP status) for a question it cannot answer.
        ``source``: where the user's history and profile are read (default: the source the
        assistant was loaded from; a caller that keeps the assistant across read sessions, like
        the page's API, passes the session of the request)."""
        source = self.source if source is None else source
        q = parse(question, self.vocabulary)
        if not 1 <= int(k) <= 50:
            raise QuestionError(f"k must be between 1 and 50, got {k}")
        rows, weights, leaves = self._history(source, user_id)
        mask = allowed(self.items, q)
        if not mask.any():
            return Answer(user_id, q, [], "nothing in the catalogue meets " + ", ".join(q.constraints))
        cos = self.embeddings @ encode(self.encoder, [q.text])[0]
        uv = user_vector(self.embeddings, rows, weights)
        scores = personalised(cos, self.embeddings, uv, self.personal_weight)
        if self.champion is not None:
            champ = champion_scores(self.champion[0], rows, weights, self.champion[1])
            scores = scores + self.champion_weight * rank_share(champ, mask)
        ranked = top_k(scores, mask, int(k))
        rid = _recommendation_id(user_id, q.text)
        rng = np.random.default_rng(int(rid[2:], 16))
        shown, propensity, exploring = explore_last_slot(
            ranked, scores, mask, self.item_tags, self._candidate_tags(source, user_id), self.explore_share, rng
        )
        items = [
            {
                **self._explain(int(i), q, leaves, bool(e)),
                "position": n,
                "propensity": float(p),
                "is_exploration": bool(e),
                "score": float(scores[int(i)]),
            }
            for n, (i, p, e) in enumerate(zip(shown, propensity, exploring, strict=True), 1)
        ]
        if items:
            append_answer(self._log_rows(rid, user_id, items), self.log_folder)
        message = "" if uv is not None else "no history for this user yet: ranked by the question alone"
        return Answer(user_id, q, items, message, rid if items else None)

    def _log_rows(self, rid: str, user_id: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The answer as ``ml.logged_slates`` rows (``columns.LOGGED_SLATE_COLUMNS``)."""
        from datetime import UTC, datetime

        as_of = datetime.now(UTC).replace(tzinfo=None).isoformat()
        version = f"{POLICY}-explore{self.explore_share:g}"
        return [
            {
                "recommendation_id": rid,
                "run_id": ASSISTANT_RUN_ID,
                "user_id": str(user_id),
                "position": it["position"],
                "item_id": it["item_id"],
                "tag": it["tag"],
                "policy": POLICY,
                "policy_version": version,
                "propensity": it["propensity"],
                "propensity_se": 0.0,
                "is_exploration": it["is_exploration"],
                "score": it["score"],
                "arm_features": None,
                "as_of": as_of,
            }
            for it in items
        ]

    def _history(self, source: Any, user_id: str) -> tuple[np.ndarray, np.ndarray, set[str]]:
        """Item rows, decayed weights and leaf categories of the user's interactions (none
        before the marts are first built)."""
        if not self.has_history:
            return np.zeros(0, dtype=np.int64), np.zeros(0), set()
        hist = source.query(f"select item_id, decayed_weight from {INTERACTIONS} where user_id = ?", [str(user_id)])
        hist = hist[hist["item_id"].astype(str).isin(self.index)]
        rows = hist["item_id"].astype(str).map(self.index).to_numpy(np.int64)
        leaves = set(self.items["category"].to_numpy()[rows])
        return rows, hist["decayed_weight"].to_numpy(np.float64), leaves

    def _explain(self, i: int, q: Question, leaves: set[str], exploring: bool = False) -> dict[str, Any]:
        it = self.items.iloc[i]
        price = float(it["price"]) if pd.notna(it["price"]) else None
        brand = it["brand"] if isinstance(it["brand"], str) and it["brand"].strip() else None
        fact = str(it["title"])
        fact += f" at {price:.2f}" if price is not None else ""
        fact += f", by {brand}" if brand else ""
        why = [f"{fact}, in {it['category']}"]  # only the facts the catalogue has
        if q.constraints:
            why.append("meets " + ", ".join(q.constraints))
        if exploring:
            why.append(f"something new for you: {it['category']} may be one of your interests")
        elif it["category"] in leaves:
            why.append(f"you have shown interest in {it['category']}")
        return {
            "item_id": it["item_id"],
            "title": it["title"],
            "price": price,
            "brand": brand,
            "category": it["category"],
            "tag": self.item_tags[i],
            "why": "; ".join(why) + ".",
        }


def _recommendation_id(user_id: str, text: str) -> str:
    """``AS`` + 16 hex digits, unique per answer (user, question, the nanosecond asked)."""
    import hashlib
    import time

    return "AS" + hashlib.sha256(f"{user_id}|{text}|{time.time_ns()}".encode()).hexdigest()[:16]
