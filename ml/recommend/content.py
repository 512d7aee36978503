"""Content-based scoring from item tags/categories (or any sparse item features).

Items are TF-IDF weighted feature vectors F (n_items, n_features): tags from the tagger when
present (``ml.item_tags``), otherwise the category levels from ``marts.item_features``. A user's
profile is the L2-normalised weighted sum of the vectors of the items in their history; an item
scores the cosine between the profile and its vector, blended with a little popularity so that
ties inside a category are broken by demand, and, with ``sentiment_weight``, with what the item's
reviews say (the fit context's ``item_sentiment``: mean review sentiment in [-1, 1] from
``ml.review_sentiment``, 0 for an item without reviews). The explanation is the feature
(tag/category) that contributes most to that cosine.

``sentiment_weight`` is 0 by default: on the synthetic shops, shoppers' choices do not depend on
an item's quality (only its ratings and reviews do), so the term cannot earn its place there; a
shop whose buyers avoid badly reviewed items sets it through ``retrain_models``' candidates.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ml.recommend.base import Recommender


def _l2_rows(M: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(M.multiply(M).sum(axis=1)).ravel())
    return sp.csr_matrix(sp.diags(1.0 / np.maximum(norms, 1e-12)) @ M)


class ContentBased(Recommender):
    name = "content"

    def __init__(self, popularity_weight: float = 0.1, idf: bool = True, sentiment_weight: float = 0.0):
        self.popularity_weight = popularity_weight
        self.idf = idf
        self.sentiment_weight = sentiment_weight

    def fit(self, X: sp.csr_matrix, **context: Any) -> ContentBased:
        F = context.get("item_features")
        if F is None:
            raise ValueError("content: the fit context needs item_features (n_items, n_features)")
        F = sp.csr_matrix(F, dtype=np.float32)
        if F.shape[0] != X.shape[1]:
            raise ValueError(f"content: item_features has {F.shape[0]} rows but X has {X.shape[1]} items")
        df = np.asarray((F > 0).sum(axis=0)).ravel()
        idf = np.log1p(F.shape[0] / (1.0 + df)) if self.idf else np.ones(F.shape[1])
        self.features_ = _l2_rows(sp.csr_matrix(F @ sp.diags(idf.astype(np.float32))))  # (n_items, n_features)
        names = context.get("feature_names")
        self.feature_names_ = (
            np.asarray(names, dtype=object) if names is not None else np.array([f"f{i}" for i in range(F.shape[1])])
        )
        sentiment = context.get("item_sentiment")
        self.sentiment_ = np.zeros(X.shape[1], dtype=np.float32)
        if sentiment is not None:
            sentiment = np.asarray(sentiment, dtype=np.float32)
            if sentiment.shape != (X.shape[1],):
                raise ValueError(f"content: item_sentiment has shape {sentiment.shape}, expected ({X.shape[1]},)")
            self.sentiment_ = np.clip(np.nan_to_num(sentiment), -1.0, 1.0)
        self._fit_fallback(X)
        return self

    def _profiles(self, X: sp.csr_matrix, rows: np.ndarray) -> sp.csr_matrix:
        return _l2_rows(sp.csr_matrix(X[rows], dtype=np.float32) @ self.features_)

    def _score(self, X: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
        cos = (self._profiles(X, rows) @ self.features_.T).toarray()
        return cos + self.popularity_weight * self.fallback_[None, :] + self.sentiment_weight * self.sentiment_[None, :]

    def explain(self, X: sp.csr_matrix, rows: np.ndarray, items: np.ndarray) -> list[list[dict[str, Any]]]:
        """The tag/category with the largest share of the profile-item cosine."""
        P = self._profiles(X, np.asarray(rows))
        out: list[list[dict[str, Any]]] = []
        for u, its in enumerate(items):
            valid = np.asarray(its) >= 0
            contrib = self.features_[np.where(valid, its, 0)].multiply(P[u]).toarray()  # (k, n_features)
            best = contrib.argmax(axis=1)
            strong = contrib.max(axis=1) > 0
            out.append(
                [
                    ({"kind": "tag", "tag": str(self.feature_names_[b])} if s else {"kind": "popular"})
                    if ok
                    else {"kind": "none"}
                    for b, s, ok in zip(best, strong, valid, strict=True)
                ]
            )
        return out
