"""Popularity with time decay: the cold-start fallback."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ml.recommend.base import Recommender


class Popularity(Recommender):
    """Scores every item by the number of distinct users weighted by recency.

    Pass the *decayed* interaction matrix (weights multiplied by 0.5^(age / half-life)) to get
    a time-decayed popularity; ``half_life_days`` is recorded so the registry shows it.
    """

    name = "popularity"

    def __init__(self, half_life_days: float = 14.0, use_weights: bool = True):
        self.half_life_days = half_life_days
        self.use_weights = use_weights

    def fit(self, X: sp.csr_matrix, **context: Any) -> Popularity:
        M = X if self.use_weights else (X > 0).astype(np.float32)
        pop = np.asarray(M.sum(axis=0)).ravel()
        self.popularity_ = pop / pop.max() if pop.max() > 0 else pop
        return self

    def _score(self, X: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.popularity_, (len(rows), len(self.popularity_))).copy()

    def explain(self, X: sp.csr_matrix, rows: np.ndarray, items: np.ndarray) -> list[list[dict[str, Any]]]:
        return [[{"kind": "popular", "score": float(self.popularity_[i])} for i in it] for it in items]
