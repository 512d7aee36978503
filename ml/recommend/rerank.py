"""Context-aware re-ranking on top of any base recommender.

The base model's top ``candidates`` items per user are re-scored with

    z(base) + recency_weight * z(session co-occurrence with the user's latest items)
            + markov_weight * z(log P(category of item | the user's latest categories))
            + time_weight  * z(log lift of the item's category in the user's time slots)

(``z`` standardises each user's row). Items outside the candidates keep their base order below
the candidates. Co-occurrence comes from sessions of the event stream, the Markov next-category
model from consecutive interactions (or ``category_transitions`` given in the fit context, e.g.
read from ``ml.category_transitions``), time lifts from day-of-week x day-part slots.

Per-user context (latest items, usual time slots) is learned at fit and found again through the
row's interaction pattern; for histories not seen at fit time the row's own weights stand in for
recency (they are time-decayed in the pipeline) and the newest time slot seen at fit is used.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ml.recommend.base import Recommender, binarize, lookup_rows, row_keys, zscore_rows
from ml.recommend.context import (
    N_TIME_SLOTS,
    category_transitions,
    recency_matrix,
    session_matrix,
    time_slot,
)
from ml.recommend.knn import topk_cosine


class ContextReranker(Recommender):
    name = "context"

    def __init__(
        self,
        base: str = "item_knn",
        base_params: dict[str, Any] | None = None,
        candidates: int = 100,
        recency_weight: float = 0.3,
        markov_weight: float = 0.2,
        time_weight: float = 0.1,
        last_n: int = 5,
        neighbours: int = 50,
    ):
        self.base = base
        self.base_params = base_params
        self.candidates = candidates
        self.recency_weight = recency_weight
        self.markov_weight = markov_weight
        self.time_weight = time_weight
        self.last_n = last_n
        self.neighbours = neighbours

    def fit(self, X: sp.csr_matrix, **context: Any) -> ContextReranker:
        from ml.recommend import make_model

        if self.base == self.name:
            raise ValueError("context: the base model cannot be another context re-ranker")
        n_users, n_items = X.shape
        self.base_model_ = make_model(self.base, **(self.base_params or {})).fit(X, **context)
        events: pd.DataFrame | None = context.get("events")
        has_events = events is not None and len(events) > 0
        # session co-occurrence between items (top neighbours per item)
        S = session_matrix(events, n_items) if has_events else binarize(X)
        self.cooc_ = topk_cosine(S, self.neighbours, shrinkage=5.0)  # (n_items, n_items)
        self.recent_ = (
            recency_matrix(events, n_users, n_items, self.last_n) if has_events else sp.csr_matrix(X, dtype=np.float32)
        )
        self.keys_ = row_keys(X)
        cats = context.get("item_categories")
        self.item_categories_ = None if cats is None else np.asarray(cats, dtype=np.int64)
        if self.item_categories_ is not None:
            n_cat = int(self.item_categories_.max()) + 1 if len(self.item_categories_) else 0
            given = context.get("category_transitions")
            if given is not None and np.asarray(given).shape == (n_cat, n_cat):
                T = np.asarray(given, dtype=np.float64)
                T = (T + 1e-3) / (T + 1e-3).sum(axis=1, keepdims=True)
            else:
                T = (
                    category_transitions(events, self.item_categories_, n_cat)
                    if has_events
                    else np.full((n_cat, n_cat), 1.0 / max(n_cat, 1))
                )
            self.transitions_ = T  # (n_cat, n_cat) P(next | current)
            self.item_cat_onehot_ = sp.csr_matrix(
                (np.ones(n_items, np.float32), (np.arange(n_items), np.clip(self.item_categories_, 0, None))),
                shape=(n_items, max(n_cat, 1)),
            )
            # time-slot lift per category and each user's slot profile
            slot_cat = np.ones((N_TIME_SLOTS, max(n_cat, 1)))
            user_slots = np.zeros((n_users, N_TIME_SLOTS))
            if events is not None and has_events:
                slots = time_slot(events["ts"].to_numpy())
                ev_cat = self.item_categories_[events["col"].to_numpy()]
                known_cat = ev_cat >= 0
                np.add.at(slot_cat, (slots[known_cat], ev_cat[known_cat]), 1.0)
                np.add.at(user_slots, (events["row"].to_numpy(), slots), 1.0)
                self.now_slot_ = int(time_slot(np.array([events["ts"].max()]))[0])
            else:
                self.now_slot_ = 0
            p_cat_slot = slot_cat / slot_cat.sum(axis=1, keepdims=True)
            p_cat = slot_cat.sum(axis=0) / slot_cat.sum()
            self.slot_lift_ = np.log(p_cat_slot / p_cat[None, :])  # (28, n_cat)
            totals = user_slots.sum(axis=1, keepdims=True)
            self.user_slots_ = np.divide(user_slots, totals, out=np.zeros_like(user_slots), where=totals > 0)
        self._fit_fallback(X)
        return self

    def _context_terms(self, X: sp.csr_matrix, rows: np.ndarray) -> dict[str, np.ndarray]:
        found = lookup_rows(self.keys_, X, rows)
        known = found >= 0
        R = sp.csr_matrix(X[rows], dtype=np.float32)
        if known.any():
            stacked = sp.vstack([self.recent_[found[known]], R[~known]]).tocsr()
            order = np.concatenate([np.flatnonzero(known), np.flatnonzero(~known)])
            R = stacked[np.argsort(order)]
        terms = {"recency": (R @ self.cooc_).toarray()}
        if self.item_categories_ is not None:
            rc = np.asarray((R @ self.item_cat_onehot_).todense())
            rc = rc / np.maximum(rc.sum(axis=1, keepdims=True), 1e-12)
            p_next = rc @ self.transitions_  # (n, n_cat)
            terms["markov"] = np.log(np.maximum(p_next[:, np.clip(self.item_categories_, 0, None)], 1e-12))
            slots = np.zeros((len(rows), N_TIME_SLOTS))
            slots[known] = self.user_slots_[found[known]]
            slots[~known, self.now_slot_] = 1.0
            empty = slots.sum(axis=1) == 0
            slots[empty, self.now_slot_] = 1.0
            lift = slots @ self.slot_lift_  # (n, n_cat)
            terms["time"] = lift[:, np.clip(self.item_categories_, 0, None)]
        return terms

    def _score(self, X: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
        base = self.base_model_.scores(X, rows)
        seen = sp.csr_matrix(X[rows])
        zb = zscore_rows(base, seen)
        total = zb.copy()
        weights = {"recency": self.recency_weight, "markov": self.markov_weight, "time": self.time_weight}
        for name, term in self._context_terms(X, rows).items():
            if weights[name]:
                total += weights[name] * zscore_rows(term, seen)
        n_cand = min(self.candidates, base.shape[1])
        if n_cand < base.shape[1]:
            masked = np.where(seen.toarray() > 0, -np.inf, base)
            cand = np.argpartition(-masked, n_cand - 1, axis=1)[:, :n_cand]
            out = zb - 1e3
            np.put_along_axis(out, cand, np.take_along_axis(total, cand, axis=1), axis=1)
            return out
        return total

    def explain(self, X: sp.csr_matrix, rows: np.ndarray, items: np.ndarray) -> list[list[dict[str, Any]]]:
        """The base model's reason, unless the session/next-category context moved the item most."""
        base_why = self.base_model_.explain(X, rows, items)
        terms = self._context_terms(X, np.asarray(rows))
        cats = self.item_categories_
        out: list[list[dict[str, Any]]] = []
        for u, its in enumerate(items):
            row: list[dict[str, Any]] = []
            for s, i in enumerate(its):
                if i < 0:
                    row.append({"kind": "none"})
                    continue
                rec = terms["recency"][u, i] * self.recency_weight
                mk = (
                    np.exp(terms["markov"][u, i]) * self.markov_weight
                    if "markov" in terms and cats is not None
                    else 0.0
                )
                if mk > rec and mk > 0.05 and cats is not None:
                    row.append({"kind": "rule", "rule": f"next-category:{int(cats[i])}"})
                else:
                    row.append(base_why[u][s])
            out.append(row)
        return out
