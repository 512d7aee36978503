"""EASE (Steck 2019): a closed-form linear item-item model, with two optional extensions.

B = argmin ||X - X B||^2 + ||Lambda^1/2 B||^2  subject to diag(B) = 0, solved as
P = (G + Lambda)^-1, B = -P / diag(P) (off-diagonal), with G the item Gram matrix.

* ``dropout`` p > 0 uses the dropout-equivalent penalty Lambda = l2 + p/(1-p) diag(G)
  (EDLAE, Steck 2020), which regularises popular items more.
* ``session_weight`` > 0 adds the Gram matrix of short-range co-occurrence units (windows of
  consecutive interactions and bursts, see :func:`ml.recommend.context.session_matrix`) built
  from the ``events`` in the fit context: items used *close together* count extra.

Cost: O(n_items^3) time and O(n_items^2) memory; ``max_items`` restricts the model to the most
popular items (the others score below every modelled item).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ml.recommend.base import Recommender, binarize, explain_dense_sources, sources_as_reasons
from ml.recommend.context import session_matrix


class EASE(Recommender):
    name = "ease"

    def __init__(
        self,
        l2: float = 500.0,
        dropout: float = 0.0,
        binary: bool = True,
        session_weight: float = 0.0,
        session_window: int = 10,
        session_gap_seconds: float = 60.0,
        max_items: int | None = None,
    ):
        self.l2 = l2
        self.dropout = dropout
        self.binary = binary
        self.session_weight = session_weight
        self.session_window = session_window
        self.session_gap_seconds = session_gap_seconds
        self.max_items = max_items

    def fit(self, X: sp.csr_matrix, **context: Any) -> EASE:
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ease: dropout must be in [0, 1), got {self.dropout}")
        Xi = binarize(X) if self.binary else sp.csr_matrix(X, dtype=np.float32)
        n = X.shape[1]
        pop = np.asarray(binarize(X).sum(axis=0)).ravel()
        if self.max_items and self.max_items < n:
            items = np.sort(np.argsort(-pop, kind="stable")[: self.max_items])
        else:
            items = np.arange(n)
        Xs = Xi[:, items]
        G = (Xs.T @ Xs).toarray().astype(np.float64)
        events = context.get("events")
        if self.session_weight > 0 and events is not None and len(events):
            S = session_matrix(events, n, window=self.session_window, gap_seconds=self.session_gap_seconds)[:, items]
            G += self.session_weight * (S.T @ S).toarray()
        diag = np.diag_indices(len(items))
        base = G[diag].copy()
        G[diag] += self.l2 + self.dropout / (1.0 - self.dropout) * base
        P = np.linalg.inv(G)
        del G
        P /= -np.diag(P).copy()[None, :]  # in place: B = -P / diag(P), memory stays at two m x m arrays
        P[diag] = 0.0
        self.items_ = items  # (m,) modelled item columns
        self.weights_ = P.astype(np.float32)  # (m, m)
        self._fit_fallback(X)
        return self

    def _score(self, X: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
        Xr = sp.csr_matrix(X[rows], dtype=np.float32)
        if self.binary:
            Xr = binarize(Xr)
        sub = np.asarray(Xr[:, self.items_] @ self.weights_)
        if len(self.items_) == X.shape[1]:
            return sub
        out = np.empty((len(rows), X.shape[1]), dtype=np.float32)
        floor = sub.min(axis=1, keepdims=True) - 1.0 if sub.size else np.zeros((len(rows), 1), np.float32)
        out[:] = floor + 1e-3 * self.fallback_[None, :].astype(np.float32)
        out[:, self.items_] = sub
        return out

    def explain(self, X: sp.csr_matrix, rows: np.ndarray, items: np.ndarray) -> list[list[dict[str, Any]]]:
        """The history item with the largest weight towards each recommended item."""
        return sources_as_reasons(self.explain_sources(X, rows, items), items)

    def explain_sources(self, X: sp.csr_matrix, rows: np.ndarray, items: np.ndarray) -> np.ndarray:
        """:meth:`explain` as an array: the source history item per slot, -1 for ``popular``/empty
        (items outside the modelled ``max_items`` weigh 0)."""
        n = X.shape[1]
        index = None
        if len(self.items_) != n:
            index = np.full(n, -1, dtype=np.int64)
            index[self.items_] = np.arange(len(self.items_))
        return explain_dense_sources(X, rows, items, self.weights_, index)
