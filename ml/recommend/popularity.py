"""Popularity with time decay: the cold-start fallback."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ml.recommend.base import Recommender


class Popularity(Recommender):
    """Scores every item by how much it was used, weighted by recency.

    With ``events`` in the fit context (columns ``col`` and ``ts`` in seconds) each event counts
    0.5^(age / half-life) at the newest event's time. Without events, pass the *decayed*
    interaction matrix (weights already multiplied by the decay) to get the same effect;
    ``use_weights=False`` counts distinct users instead.
    """

    name = "popularity"

    def __init__(self, half_life_days: float = 14.0, use_weights: bool = True):
        self.half_life_days = half_life_days
        self.use_weights = use_weights

    def fit(self, X: sp.csr_matrix, **context: Any) -> Popularity:
        events: pd.DataFrame | None = context.get("events")
        if events is not None and len(events) and "ts" in events and self.half_life_days > 0:
            ts = events["ts"].to_numpy(np.float64)
            age_days = (ts.max() - ts) / 86400.0
            w = np.power(0.5, age_days / self.half_life_days)
            pop = np.bincount(events["col"].to_numpy(np.int64), weights=w, minlength=X.shape[1])
        else:
            M = X if self.use_weights else (X > 0).astype(np.float32)
            pop = np.asarray(M.sum(axis=0)).ravel().astype(np.float64)
        self.popularity_ = pop / pop.max() if pop.size and pop.max() > 0 else pop
        self._fit_fallback(X)
        self.fallback_ = self.popularity_
        return self

    def _score(self, X: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.popularity_, (len(rows), len(self.popularity_))).copy()

    def explain(self, X: sp.csr_matrix, rows: np.ndarray, items: np.ndarray) -> list[list[dict[str, Any]]]:
        return [
            [{"kind": "popular", "score": float(self.popularity_[i])} if i >= 0 else {"kind": "none"} for i in it]
            for it in items
        ]
