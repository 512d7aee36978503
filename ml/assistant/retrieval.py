"""Ranking catalogue items for a question: BM25 over the item text, MiniLM sentence embeddings,
and personalisation with the user's own history.

* :class:`BM25`: Okapi BM25 (k1 1.2, b 0.75) over the words of each item's text.
* MiniLM: the cosine between the question's and each item's L2-normalised embedding
  (``ml.tagging.encoder``; the item embeddings come from ``ml.assistant.index``).
* Personalisation: the user's vector is the weighted mean of the embeddings of the items in the
  user's history (weights: the decayed interaction weights), normalised; an item gains
  ``personal_weight`` x its cosine with that vector, so among the items that answer the question
  the ones like what the user already chose come first; and the champion recommender's scores
  for the user (:func:`champion_scores`), as each allowed item's place among the allowed items
  (:func:`rank_share`: scores of different models are not on one scale), times ``champion_weight``.

Hard constraints (``ml.assistant.query``) filter before ranking: :func:`allowed`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ml.assistant.query import WORD, Question

DEFAULT_PERSONAL_WEIGHT = 4.0  # the weight python -m ml bench assistant chose on validation questions (default shop)
DEFAULT_CHAMPION_WEIGHT = (
    6.4  # the champion's rank-share weight: see docs/benchmarks.md for why not the bench's larger pick
)


class BM25:
    """Okapi BM25 over lower-case words; ``scores(text)`` gives one score per fitted document."""

    def __init__(self, k1: float = 1.2, b: float = 0.75):
        self.k1 = k1
        self.b = b

    def fit(self, texts: Sequence[str]) -> BM25:
        from sklearn.feature_extraction.text import CountVectorizer

        self.vectorizer_ = CountVectorizer(token_pattern=WORD.pattern, lowercase=True)
        tf = sp.csr_matrix(self.vectorizer_.fit_transform(list(texts)), dtype=np.float64)
        n = tf.shape[0]
        length = np.asarray(tf.sum(axis=1)).ravel()
        df = np.bincount(tf.indices, minlength=tf.shape[1])
        self.idf_ = np.log1p((n - df + 0.5) / (df + 0.5))
        norm = self.k1 * (1 - self.b + self.b * length / max(length.mean(), 1e-9))
        tf = tf.tocoo()
        weighted = tf.data * (self.k1 + 1) / (tf.data + norm[tf.row])
        self.matrix_ = sp.csr_matrix((weighted, (tf.row, tf.col)), shape=tf.shape)
        return self

    def scores(self, text: str) -> np.ndarray:
        q = self.vectorizer_.transform([text])
        q.data[:] = 1.0  # a repeated query word counts once
        return np.asarray((self.matrix_ @ sp.csr_matrix(q.multiply(self.idf_)).T).toarray()).ravel()


def allowed(items: pd.DataFrame, q: Question) -> np.ndarray:
    """Items meeting every hard constraint of ``q``: price bounds, colour, brand, leaf category
    and style (a style word in the title or description). ``items`` has price, colour, brand,
    category and text columns (see ``ml.assistant.service.catalogue``)."""
    ok = np.ones(len(items), dtype=bool)
    price = items["price"].to_numpy(np.float64)
    if q.min_price is not None:
        ok &= price >= q.min_price
    if q.max_price is not None:
        ok &= price <= q.max_price
    if q.colours:
        ok &= items["colour"].astype(str).str.lower().isin(q.colours).to_numpy()
    if q.brands:
        ok &= items["brand"].astype(str).str.lower().isin(q.brands).to_numpy()
    if q.categories:
        ok &= items["category"].isin(q.categories).to_numpy()
    if q.styles:
        text = items["text"].str.lower()
        ok &= np.logical_or.reduce([text.str.contains(rf"\b{s}\b", regex=True).to_numpy() for s in q.styles])
    return ok


def user_vector(embeddings: np.ndarray, rows: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
    """The normalised weighted mean of ``embeddings[rows]``; None without history."""
    if len(rows) == 0:
        return None
    v = (np.asarray(weights, dtype=np.float64)[:, None] * embeddings[rows]).sum(axis=0)
    norm = float(np.linalg.norm(v))
    return (v / norm).astype(np.float32) if norm > 0 else None


def champion_scores(model: Any, rows: np.ndarray, weights: np.ndarray, columns: np.ndarray | None = None) -> np.ndarray:
    """The recommender ``model``'s score of every catalogue item for a user with this history
    (item ``rows`` and weights); ``columns``: each catalogue item's column in the model (-1: the
    model does not know it; None: the same order). NaN where the model has no score."""
    n_model = int(getattr(model, "n_items_", 0)) or (len(columns) if columns is not None else 0)
    cols = np.arange(n_model) if columns is None else np.asarray(columns)
    hist = cols[rows] if len(rows) else np.zeros(0, np.int64)
    keep = hist >= 0
    X = sp.csr_matrix(
        (np.asarray(weights, np.float64)[keep], (np.zeros(keep.sum(), np.int64), hist[keep])), shape=(1, n_model)
    )
    scored = np.asarray(model.scores(X, np.array([0]))[0], dtype=np.float64)
    out = np.full(len(cols), np.nan)
    known = cols >= 0
    out[known] = scored[cols[known]]
    return out


def rank_share(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Each allowed item's place among the allowed items with a finite value, as a share in
    [0, 1] (1: the best, 0: the worst or a single one); 0 for every other item."""
    out = np.zeros(len(values))
    idx = np.flatnonzero(mask & np.isfinite(values))
    if len(idx) > 1:
        order = np.argsort(np.argsort(values[idx], kind="stable"), kind="stable")
        out[idx] = order / (len(idx) - 1)
    return out


def top_k(scores: np.ndarray, mask: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` best allowed scores, best first (ties: lower index first)."""
    idx = np.flatnonzero(mask)
    if len(idx) == 0:
        return idx
    order = np.lexsort((idx, -scores[idx]))
    return idx[order[:k]]


def personalised(
    query_scores: np.ndarray, embeddings: np.ndarray, user: np.ndarray | None, weight: float
) -> np.ndarray:
    """``query_scores`` plus ``weight`` x each item's cosine with the user's vector (as is without one)."""
    if user is None or weight == 0:
        return query_scores
    return query_scores + weight * (embeddings @ user)


def encode(encoder: tuple[Any, Any], texts: Sequence[str]) -> np.ndarray:
    """L2-normalised MiniLM embeddings of ``texts`` (``encoder`` = (tokenizer, model))."""
    from ml.tagging import encoder as enc

    return enc.embed(encoder[0], encoder[1], list(texts), batch_size=64, max_length=128)
