"""Item-based collaborative filtering: cosine similarity with shrinkage and BM25 weighting."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ml.recommend.base import Recommender


def bm25_weight(X: sp.csr_matrix, k1: float = 1.2, b: float = 0.75) -> sp.csr_matrix:
    """BM25 re-weighting of a user x item matrix (users are documents, items are terms)."""
    X = sp.csr_matrix(X, dtype=np.float64)
    n_users = X.shape[0]
    df = np.bincount(X.indices, minlength=X.shape[1])
    idf = np.log1p(n_users / (1.0 + df))
    row_len = np.asarray(X.sum(axis=1)).ravel()
    avg = row_len.mean() if n_users else 1.0
    length_norm = (1.0 - b) + b * row_len / max(avg, 1e-12)
    rows = np.repeat(np.arange(n_users), np.diff(X.indptr))
    data = X.data * (k1 + 1.0) / (k1 * length_norm[rows] + X.data) * idf[X.indices]
    return sp.csr_matrix((data, X.indices, X.indptr), shape=X.shape)


class ItemKNN(Recommender):
    """Item-item cosine similarity (with shrinkage) on BM25-weighted feedback; keeps the top
    ``neighbours`` per item. Score of item j for user u: sum_i x_ui * s_ij."""

    name = "item_knn"

    def __init__(self, neighbours: int = 100, shrinkage: float = 10.0, bm25: bool = True):
        self.neighbours = neighbours
        self.shrinkage = shrinkage
        self.bm25 = bm25

    def fit(self, X: sp.csr_matrix, **context: Any) -> ItemKNN:
        W = bm25_weight(X) if self.bm25 else sp.csr_matrix(X, dtype=np.float64)
        Wc = W.tocsc()
        norms = np.sqrt(np.asarray(Wc.multiply(Wc).sum(axis=0)).ravel())
        co = (Wc.T @ Wc).toarray()
        denom = np.outer(norms, norms) + self.shrinkage
        S = np.divide(co, denom, out=np.zeros_like(co), where=denom > 0)
        np.fill_diagonal(S, 0.0)
        n = S.shape[0]
        keep = min(self.neighbours, n - 1) if n > 1 else 0
        if 0 < keep < n - 1:
            thresh_idx = np.argpartition(-S, keep - 1, axis=0)[:keep]
            mask = np.zeros_like(S, dtype=bool)
            np.put_along_axis(mask, thresh_idx, True, axis=0)
            S = np.where(mask, S, 0.0)
        self.similarity_ = S.astype(np.float32)  # (n_items, n_items): column j = neighbours of j
        return self

    def _score(self, X: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
        return np.asarray(X[rows] @ self.similarity_)

    def explain(self, X: sp.csr_matrix, rows: np.ndarray, items: np.ndarray) -> list[list[dict[str, Any]]]:
        """The history item contributing most to each recommended item."""
        out: list[list[dict[str, Any]]] = []
        for r, its in zip(rows, items, strict=True):
            hist = X[r].indices
            if len(hist) == 0:
                out.append([{"kind": "popular"} for _ in its])
                continue
            w = X[r].data
            valid = its >= 0
            contrib = w[:, None] * self.similarity_[np.ix_(hist, np.where(valid, its, 0))]
            best = hist[np.argmax(contrib, axis=0)]
            out.append(
                [
                    {"kind": "similar_item", "item": int(b)} if ok else {"kind": "none"}
                    for b, ok in zip(best, valid, strict=True)
                ]
            )
        return out
