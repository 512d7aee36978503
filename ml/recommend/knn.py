"""Neighbourhood collaborative filtering: item-based and user-based cosine similarity with
shrinkage and optional BM25 weighting. Similarities are computed in column blocks and only the
top ``neighbours`` per item (or user) are kept, so memory stays O(n_items * neighbours)."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ml.recommend.base import Recommender, binarize, explain_by_item_weights, explain_sources


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


def topk_cosine(W: sp.csr_matrix, neighbours: int, shrinkage: float, block: int = 1024) -> sp.csr_matrix:
    """Cosine similarity between the columns of ``W`` (shape (n, m)) with shrinkage
    ``co / (|a||b| + shrinkage)``, keeping the ``neighbours`` largest per column; returns a
    CSR (m, m) where column j holds the neighbours of j (diagonal excluded)."""
    Wc = sp.csc_matrix(W, dtype=np.float32)
    m = Wc.shape[1]
    norms = np.sqrt(np.asarray(Wc.multiply(Wc).sum(axis=0)).ravel())
    keep = max(0, min(neighbours, m - 1))
    WT = Wc.T.tocsr()
    rows_out, cols_out, vals_out = [], [], []
    for start in range(0, m, block):
        stop = min(start + block, m)
        co = np.asarray((WT @ Wc[:, start:stop]).toarray(), dtype=np.float32)  # (m, stop-start)
        co /= np.outer(norms, norms[start:stop]) + shrinkage + 1e-12
        co[np.arange(start, stop), np.arange(stop - start)] = 0.0
        if keep == 0:
            continue
        if keep < m:
            top = np.argpartition(-co, keep - 1, axis=0)[:keep]
        else:
            top = np.broadcast_to(np.arange(m)[:, None], co.shape)
        vals = np.take_along_axis(co, top, axis=0)
        ok = vals > 0
        rows_out.append(top[ok])
        cols_out.append(np.broadcast_to(np.arange(start, stop), top.shape)[ok])
        vals_out.append(vals[ok])
    if not rows_out:
        return sp.csr_matrix((m, m), dtype=np.float32)
    return sp.csr_matrix(
        (np.concatenate(vals_out), (np.concatenate(rows_out), np.concatenate(cols_out))), shape=(m, m), dtype=np.float32
    )


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
        self.similarity_ = topk_cosine(W, self.neighbours, self.shrinkage)  # (n_items, n_items)
        self._fit_fallback(X)
        return self

    def _score(self, X: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
        return (sp.csr_matrix(X[rows], dtype=np.float32) @ self.similarity_).toarray()

    def explain(self, X: sp.csr_matrix, rows: np.ndarray, items: np.ndarray) -> list[list[dict[str, Any]]]:
        """The history item contributing most to each recommended item."""
        return explain_by_item_weights(X, rows, items, self.similarity_)

    def explain_sources(self, X: sp.csr_matrix, rows: np.ndarray, items: np.ndarray) -> np.ndarray:
        """:meth:`explain` as an array: the source history item per slot, -1 for ``popular``/empty."""
        return explain_sources(X, rows, items, self.similarity_)


class UserKNN(Recommender):
    """User-user cosine similarity (with shrinkage) on binarised, optionally IDF-weighted
    feedback. Score of item j for user u: sum over the ``neighbours`` most similar training
    users v of sim(u, v) * x_vj. New users are compared with the training users directly."""

    name = "user_knn"

    def __init__(self, neighbours: int = 50, shrinkage: float = 10.0, idf: bool = True, batch: int = 256):
        self.neighbours = neighbours
        self.shrinkage = shrinkage
        self.idf = idf
        self.batch = batch

    def _weigh(self, X: sp.csr_matrix) -> sp.csr_matrix:
        return sp.csr_matrix(binarize(X) @ sp.diags(self.idf_weights_), dtype=np.float32)

    def fit(self, X: sp.csr_matrix, **context: Any) -> UserKNN:
        B = binarize(X)
        df = np.asarray(B.sum(axis=0)).ravel()
        n = max(X.shape[0], 1)
        self.idf_weights_ = (np.log1p(n / (1.0 + df)) if self.idf else np.ones_like(df)).astype(np.float32)
        W = self._weigh(X)
        self.train_ = W  # (n_train_users, n_items)
        self.train_norms_ = np.sqrt(np.asarray(W.multiply(W).sum(axis=1)).ravel()).astype(np.float32)
        self.train_items_ = B
        self._fit_fallback(X)
        return self

    def _score(self, X: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
        out = np.zeros((len(rows), self.train_.shape[1]), dtype=np.float32)
        Q = self._weigh(sp.csr_matrix(X[rows]))
        qn = np.sqrt(np.asarray(Q.multiply(Q).sum(axis=1)).ravel())
        k = min(self.neighbours, self.train_.shape[0])
        for s in range(0, len(rows), self.batch):
            co = (Q[s : s + self.batch] @ self.train_.T).toarray()
            denom = np.outer(qn[s : s + self.batch], self.train_norms_)
            itself = (co >= denom * (1.0 - 1e-6)) & (denom > 0)  # the user itself when scoring training users
            sim = co / (denom + self.shrinkage + 1e-12)
            sim[itself] = 0.0
            if k < sim.shape[1]:
                drop = np.argpartition(-sim, k - 1, axis=1)[:, k:]
                np.put_along_axis(sim, drop, 0.0, axis=1)
            out[s : s + len(sim)] = (sp.csr_matrix(sim) @ self.train_items_).toarray()
        return out

    def explain(self, X: sp.csr_matrix, rows: np.ndarray, items: np.ndarray) -> list[list[dict[str, Any]]]:
        return [[{"kind": "similar_users"} if i >= 0 else {"kind": "none"} for i in it] for it in items]
