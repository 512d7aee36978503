"""The Markov next-category model: P(next leaf category | current leaf category) of browsing.

Fitted on the step counts of ``marts.category_transition_counts`` (consecutive weighted events on
different items within a session). With additive smoothing ``alpha`` every category can follow
every other; ``alpha=0`` keeps the maximum-likelihood estimate.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


class MarkovNextCategory:
    """First-order Markov chain over categories.

    Parameters
    ----------
    alpha: additive (Laplace) smoothing count added to every transition, >= 0.

    Learned attributes: ``categories_`` (n,), ``counts_`` (n, n) observed steps,
    ``transition_matrix_`` (n, n) row-stochastic for categories with outgoing steps (rows of
    categories never left are uniform when alpha > 0, else zero), ``index_`` {category: row}.
    """

    def __init__(self, alpha: float = 0.0):
        self.alpha = alpha

    def get_params(self) -> dict[str, Any]:
        return {"alpha": self.alpha}

    def fit(
        self,
        transitions: pd.DataFrame,
        from_col: str = "from_category",
        to_col: str = "to_category",
        count_col: str = "n_transitions",
    ) -> MarkovNextCategory:
        """``transitions``: one row per (from, to) with a count (repeats are summed)."""
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha}")
        cats = sorted(set(transitions[from_col]).union(transitions[to_col]))
        self.categories_ = np.asarray(cats, dtype=object)
        self.index_ = {c: i for i, c in enumerate(cats)}
        n = len(cats)
        counts = np.zeros((n, n), dtype=np.float64)
        rows = transitions[from_col].map(self.index_).to_numpy()
        cols = transitions[to_col].map(self.index_).to_numpy()
        np.add.at(counts, (rows, cols), transitions[count_col].to_numpy(dtype=float))
        self.counts_ = counts
        smoothed = counts + self.alpha
        totals = smoothed.sum(axis=1, keepdims=True)
        self.transition_matrix_ = np.divide(smoothed, totals, out=np.zeros_like(smoothed), where=totals > 0)
        return self

    def predict_proba(self, category: str) -> pd.Series:
        """P(next | ``category``) over all categories, most likely first (empty if unknown)."""
        i = self.index_.get(category)
        if i is None:
            return pd.Series(dtype=float)
        p = pd.Series(self.transition_matrix_[i], index=self.categories_)
        return p[p > 0].sort_values(ascending=False, kind="stable")

    def top_next(self, category: str, n: int = 3) -> list[str]:
        return self.predict_proba(category).head(n).index.tolist()

    def to_frame(self) -> pd.DataFrame:
        """Observed transitions with counts and probabilities: from_category, to_category, n, probability."""
        r, c = np.nonzero(self.counts_)
        return pd.DataFrame(
            {
                "from_category": self.categories_[r],
                "to_category": self.categories_[c],
                "n": self.counts_[r, c].astype(np.int64),
                "probability": self.transition_matrix_[r, c],
            }
        ).sort_values(["from_category", "probability", "to_category"], ascending=[True, False, True], ignore_index=True)
