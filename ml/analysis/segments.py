"""K-means user segments over ``marts.user_features``, with k chosen by silhouette.

Features are behaviour counts and amounts on a log scale (``log1p``), standardised; k is the
value in ``k_values`` with the best silhouette (computed on a fixed-seed sample for speed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml.columns import USER_ID

# user_features columns used for segmentation (all >= 0; log1p-scaled before standardising)
SEGMENT_FEATURES = (
    "recency_days",
    "n_sessions",
    "n_events",
    "n_purchases",
    "monetary",
    "n_distinct_categories",
    "avg_events_per_session",
)


class UserSegmenter:
    """K-means segmentation with the number of segments chosen by silhouette.

    Parameters
    ----------
    k_values: candidate numbers of segments (each >= 2).
    random_state: seed of k-means and of the silhouette sample.
    silhouette_sample: at most this many users are used to score a k (silhouette is O(n^2)).
    n_init: k-means restarts per k.

    Learned attributes: ``k_``, ``silhouette_`` (of the chosen k), ``silhouette_by_k_``,
    ``labels_`` (n_users,), ``cluster_centers_`` (k, n_features, standardised log scale),
    ``mean_``/``scale_`` (n_features,) of the standardisation, ``feature_names_``.
    """

    def __init__(
        self,
        k_values: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8),
        random_state: int = 0,
        silhouette_sample: int = 3000,
        n_init: int = 4,
    ):
        self.k_values = k_values
        self.random_state = random_state
        self.silhouette_sample = silhouette_sample
        self.n_init = n_init

    def get_params(self) -> dict[str, Any]:
        return {
            "k_values": self.k_values,
            "random_state": self.random_state,
            "silhouette_sample": self.silhouette_sample,
            "n_init": self.n_init,
        }

    def _transform(self, X: np.ndarray) -> np.ndarray:
        return (np.log1p(np.clip(X, 0, None)) - self.mean_) / self.scale_

    def fit(self, X: np.ndarray | pd.DataFrame) -> UserSegmenter:
        """``X``: (n_users, n_features) non-negative features (NaN read as 0)."""
        from sklearn.cluster import KMeans
        from sklearn.metrics import silhouette_score

        self.feature_names_ = list(X.columns) if isinstance(X, pd.DataFrame) else None
        A = np.nan_to_num(np.asarray(X, dtype=float))
        ks = sorted({int(k) for k in self.k_values if 2 <= int(k) < len(A)})
        if not ks:
            raise ValueError(f"need more users than the smallest k (got {len(A)} users, k_values={self.k_values})")
        logged = np.log1p(np.clip(A, 0, None))
        self.mean_ = logged.mean(axis=0)
        self.scale_ = np.where(logged.std(axis=0) > 0, logged.std(axis=0), 1.0)
        Z = self._transform(A)
        rng = np.random.default_rng(self.random_state)
        sample = rng.choice(len(Z), size=min(len(Z), self.silhouette_sample), replace=False)
        self.silhouette_by_k_: dict[int, float] = {}
        models = {}
        for k in ks:
            km = KMeans(n_clusters=k, n_init=self.n_init, random_state=self.random_state).fit(Z)
            labels = km.labels_[sample]
            score = float(silhouette_score(Z[sample], labels)) if len(set(labels)) > 1 else -1.0
            self.silhouette_by_k_[k] = score
            models[k] = km
        self.k_ = max(ks, key=lambda k: (round(self.silhouette_by_k_[k], 6), -k))
        best = models[self.k_]
        self.silhouette_ = self.silhouette_by_k_[self.k_]
        self.labels_ = best.labels_.astype(np.int64)
        self.cluster_centers_ = best.cluster_centers_
        self.model_ = best
        return self

    def predict(self, X: np.ndarray | pd.DataFrame) -> np.ndarray:
        """Segment of each row of ``X`` (n_users, n_features) -> (n_users,) ints."""
        return self.model_.predict(self._transform(np.nan_to_num(np.asarray(X, dtype=float)))).astype(np.int64)

    def distances(self, X: np.ndarray | pd.DataFrame) -> np.ndarray:
        """Euclidean distance (standardised log scale) of each row to its segment's centre, (n_users,)."""
        Z = self._transform(np.nan_to_num(np.asarray(X, dtype=float)))
        lab = self.model_.predict(Z)
        return np.linalg.norm(Z - self.cluster_centers_[lab], axis=1)

    def segment_labels(self) -> dict[int, str]:
        """A readable name per segment from its two most distinctive features ('high monetary, low recency_days')."""
        names = self.feature_names_ or [f"f{i}" for i in range(self.cluster_centers_.shape[1])]
        out = {}
        for s, centre in enumerate(self.cluster_centers_):
            top = np.argsort(-np.abs(centre))[:2]
            out[s] = ", ".join(f"{'high' if centre[j] > 0 else 'low'} {names[j]}" for j in top)
        return out


@dataclass
class SegmentationResult:
    table: pd.DataFrame  # user_id, segment, segment_label, distance
    k: int
    silhouette: float
    silhouette_by_k: dict[int, float] = field(default_factory=dict)
    sizes: dict[int, int] = field(default_factory=dict)


def segment_users(features: pd.DataFrame, segmenter: UserSegmenter | None = None) -> SegmentationResult:
    """Segment users with behaviour (``has_events``) from a ``marts.user_features`` frame."""
    users = features[features["has_events"].astype(bool)] if "has_events" in features else features
    users = users.sort_values(USER_ID).reset_index(drop=True)
    X = users[list(SEGMENT_FEATURES)].astype(float)
    seg = (segmenter or UserSegmenter()).fit(X)
    labels = seg.segment_labels()
    table = pd.DataFrame(
        {
            USER_ID: users[USER_ID].to_numpy(),
            "segment": seg.labels_,
            "segment_label": [labels[int(s)] for s in seg.labels_],
            "distance": seg.distances(X),
        }
    )
    sizes = {int(k): int(v) for k, v in table["segment"].value_counts().sort_index().items()}
    return SegmentationResult(table, seg.k_, seg.silhouette_, dict(seg.silhouette_by_k_), sizes)
