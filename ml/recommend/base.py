"""Shared pieces: the interaction matrix and the recommender interface.

Shapes: ``X`` is a CSR matrix of shape (n_users, n_items) holding implicit-feedback weights.
Scoring is batched over users and vectorised over items (no per-user Python loops over items).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp


@dataclass
class InteractionData:
    """A user x item matrix with its id maps."""

    user_ids: np.ndarray
    item_ids: np.ndarray
    matrix: sp.csr_matrix
    user_index: dict[Any, int] = field(default_factory=dict)
    item_index: dict[Any, int] = field(default_factory=dict)

    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        user_col: str = "user_id",
        item_col: str = "item_id",
        weight_col: str | None = "weight",
        user_ids: np.ndarray | None = None,
        item_ids: np.ndarray | None = None,
    ) -> InteractionData:
        """Aggregate rows into a CSR matrix; rows whose user/item is outside the given id lists
        are dropped (use this to project a test set onto the training id space)."""
        users = np.asarray(user_ids) if user_ids is not None else np.sort(df[user_col].unique())
        items = np.asarray(item_ids) if item_ids is not None else np.sort(df[item_col].unique())
        u_index = {u: i for i, u in enumerate(users)}
        i_index = {it: i for i, it in enumerate(items)}
        rows = df[user_col].map(u_index)
        cols = df[item_col].map(i_index)
        ok = rows.notna() & cols.notna()
        w = df.loc[ok, weight_col].to_numpy(np.float32) if weight_col else np.ones(int(ok.sum()), np.float32)
        m = sp.csr_matrix(
            (w, (rows[ok].to_numpy(np.int64), cols[ok].to_numpy(np.int64))),
            shape=(len(users), len(items)),
            dtype=np.float32,
        )
        m.sum_duplicates()
        return cls(users, items, m, u_index, i_index)


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top-k of a dense (n, n_items) array: (indices, scores), best first.
    Entries equal to -inf are never returned as valid (their index is -1)."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1)
    sc = np.take_along_axis(part_scores, order, axis=1)
    idx = np.where(np.isfinite(sc), idx, -1)
    return idx, sc


class Recommender(ABC):
    """Interface. Subclasses implement ``fit`` and ``_score``; ``__init__`` only stores params."""

    name = "base"

    def get_params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.endswith("_")}

    @abstractmethod
    def fit(self, X: sp.csr_matrix, **context: Any) -> Recommender:
        """Learn from the (n_users, n_items) matrix; returns self."""

    @abstractmethod
    def _score(self, X: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
        """Dense scores of shape (len(rows), n_items) for the users at ``rows`` of ``X``."""

    def recommend(
        self,
        X: sp.csr_matrix,
        rows: np.ndarray | None = None,
        k: int = 10,
        exclude: sp.csr_matrix | None = None,
        batch_size: int = 2048,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k item indices and scores per user, best first, shape (n_rows, k).

        ``exclude`` (same shape as X) marks items a user must not get (e.g. purchases);
        by default everything in X is excluded. Missing slots have index -1 and score -inf.
        """
        rows = np.arange(X.shape[0]) if rows is None else np.asarray(rows)
        excl = X if exclude is None else exclude
        out_i = np.full((len(rows), k), -1, dtype=np.int64)
        out_s = np.full((len(rows), k), -np.inf, dtype=np.float64)
        for start in range(0, len(rows), batch_size):
            r = rows[start : start + batch_size]
            s = np.asarray(self._score(X, r), dtype=np.float64)
            e = excl[r].tocoo()
            s[e.row, e.col] = -np.inf
            idx, sc = top_k(s, k)
            out_i[start : start + len(r), : idx.shape[1]] = idx
            out_s[start : start + len(r), : sc.shape[1]] = sc
        return out_i, out_s

    def explain(self, X: sp.csr_matrix, rows: np.ndarray, items: np.ndarray) -> list[list[dict[str, Any]]]:
        """Per user row and recommended item: a dict with ``kind`` and details (default: score)."""
        return [[{"kind": self.name} for _ in it] for it in items]
