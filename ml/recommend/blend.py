"""A weighted blend of recommenders whose weights are fitted on validation data.

Each component's scores are standardised per user (z-scores over the items the user has not
used) and summed with weights. ``fit`` carves a per-user validation holdout out of the training
matrix (``validation`` of each user's items, seeded), fits every component on the rest, and
finds the weights by coordinate ascent on nDCG@k of the held-out items (the first component's
weight stays 1). Then every component is refitted on the whole matrix. Pass ``weights`` to skip
the search (e.g. weights fitted elsewhere on validation data).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ml.recommend.base import Recommender, top_k, zscore_rows

DEFAULT_COMPONENTS: list[dict[str, Any]] = [
    {"model": "ease", "params": {"l2": 500.0, "dropout": 0.4}},
    {"model": "item_knn", "params": {"neighbours": 100}},
]
WEIGHT_GRID = (0.0, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2)


def restrict_context(context: dict[str, Any], X_part: sp.csr_matrix) -> dict[str, Any]:
    """The fit context for a sub-matrix of X: events outside its non-zeros are dropped."""
    events: pd.DataFrame | None = context.get("events")
    if events is None or not len(events):
        return dict(context)
    coo = X_part.tocoo()
    n = X_part.shape[1]
    kept = np.unique(coo.row.astype(np.int64) * n + coo.col)
    ev_key = events["row"].to_numpy(np.int64) * n + events["col"].to_numpy(np.int64)
    return {**context, "events": events[np.isin(ev_key, kept)].reset_index(drop=True)}


def fit_weights(
    Z: list[np.ndarray], seen: sp.csr_matrix, relevant: list[set[int]], k: int = 10, rounds: int = 2
) -> tuple[np.ndarray, float]:
    """Coordinate ascent on nDCG@k over blend weights (first weight fixed at 1).

    ``Z``: per component, standardised scores (n_users, n_items) of the validation users;
    ``seen``: their training items (excluded); ``relevant``: their held-out items."""
    from ml.evaluate.metrics import ndcg_at_k

    mask = np.where(sp.csr_matrix(seen).toarray() > 0, -np.inf, 0.0)

    def score(w: np.ndarray) -> float:
        total = sum(wi * z for wi, z in zip(w, Z, strict=True) if wi) + mask
        return ndcg_at_k(top_k(total, k)[0], relevant, k)

    weights = np.zeros(len(Z))
    weights[0] = 1.0
    best = score(weights)
    for _ in range(rounds):
        improved = False
        for c in range(1, len(weights)):
            for value in WEIGHT_GRID:
                trial = weights.copy()
                trial[c] = value
                s = score(trial)
                if s > best + 1e-5:
                    best, weights, improved = s, trial, True
        if not improved:
            break
    return weights, float(best)


class Blend(Recommender):
    name = "blend"

    def __init__(
        self,
        components: list[dict[str, Any]] | None = None,
        weights: list[float] | None = None,
        validation: float = 0.2,
        k: int = 10,
        rounds: int = 2,
        max_validation_users: int = 5000,
        seed: int = 42,
    ):
        self.components = components
        self.weights = weights
        self.validation = validation
        self.k = k
        self.rounds = rounds
        self.max_validation_users = max_validation_users
        self.seed = seed

    def _components(self) -> list[dict[str, Any]]:
        comps = self.components or DEFAULT_COMPONENTS
        if any(c.get("model") == self.name for c in comps):
            raise ValueError("blend: a component cannot itself be a blend")
        return comps

    def _fit_components(self, X: sp.csr_matrix, context: dict[str, Any]) -> list[Recommender]:
        from ml.recommend import make_model

        return [make_model(c["model"], **c.get("params", {})).fit(X, **context) for c in self._components()]

    def fit(self, X: sp.csr_matrix, **context: Any) -> Blend:
        comps = self._components()
        if self.weights is not None:
            if len(self.weights) != len(comps):
                raise ValueError(f"blend: {len(self.weights)} weights for {len(comps)} components")
            self.weights_ = np.asarray(self.weights, dtype=np.float64)
            self.validation_ndcg_ = None
        else:
            self.weights_, self.validation_ndcg_ = self._fit_weights(X, context)
        self.models_ = self._fit_components(X, context)
        self._fit_fallback(X)
        return self

    def _fit_weights(self, X: sp.csr_matrix, context: dict[str, Any]) -> tuple[np.ndarray, float | None]:
        from ml.evaluate.splits import holdout_matrix

        rng = np.random.default_rng(self.seed)
        kept, held = holdout_matrix(X, self.validation, rng)
        users = np.flatnonzero(np.diff(held.indptr) > 0)
        if len(users) > self.max_validation_users:
            users = np.sort(rng.choice(users, size=self.max_validation_users, replace=False))
        if len(users) == 0 or len(self._components()) == 1:
            weights = np.zeros(len(self._components()))
            weights[0] = 1.0
            return weights, None
        models = self._fit_components(kept, restrict_context(context, kept))
        seen = kept[users]
        Z = [zscore_rows(m.scores(kept, users), seen) for m in models]
        relevant = [set(held.indices[held.indptr[u] : held.indptr[u + 1]].tolist()) for u in users]
        return fit_weights(Z, seen, relevant, self.k, self.rounds)

    def _score(self, X: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
        seen = sp.csr_matrix(X[rows])
        total = np.zeros((len(rows), X.shape[1]))
        for w, m in zip(self.weights_, self.models_, strict=True):
            if w:
                total += w * zscore_rows(m.scores(X, rows), seen)
        return total

    def explain(self, X: sp.csr_matrix, rows: np.ndarray, items: np.ndarray) -> list[list[dict[str, Any]]]:
        """For each item, the reason given by the component that contributed most to it."""
        rows = np.asarray(rows)
        active = [(w, m) for w, m in zip(self.weights_, self.models_, strict=True) if w]
        seen = sp.csr_matrix(X[rows])
        valid = np.asarray(items) >= 0
        safe = np.where(valid, items, 0)
        contrib = np.stack(
            [w * np.take_along_axis(zscore_rows(m.scores(X, rows), seen), safe, axis=1) for w, m in active]
        )  # (n_components, n_rows, k)
        winner = contrib.argmax(axis=0)
        reasons = [m.explain(X, rows, items) for _, m in active]
        return [
            [reasons[winner[u, s]][u][s] if valid[u, s] else {"kind": "none"} for s in range(items.shape[1])]
            for u in range(len(rows))
        ]
