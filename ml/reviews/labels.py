"""Weak labels from ratings: 1-2 stars negative, 3 neutral, 4-5 positive."""

from __future__ import annotations

import numpy as np

LABELS = ("negative", "neutral", "positive")


def rating_labels(ratings: np.ndarray) -> np.ndarray:
    """Label index (0 negative, 1 neutral, 2 positive) per rating 1..5; other values raise."""
    r = np.asarray(ratings, dtype=np.float64)
    bad = ~np.isin(r, [1, 2, 3, 4, 5])
    if bad.any():
        raise ValueError(f"ratings must be 1..5; got {sorted(set(r[bad].tolist()))[:5]}")
    return np.select([r <= 2, r == 3], [0, 1], 2).astype(np.int64)


def sentiment_score(proba: np.ndarray) -> np.ndarray:
    """P(positive) - P(negative) per row of (n, 3) label probabilities, in [-1, 1]."""
    p = np.asarray(proba, dtype=np.float64)
    return p[:, 2] - p[:, 0]
