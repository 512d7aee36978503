"""Shared pieces: the interaction matrix, the recommender interface and small matrix helpers.

Shapes: ``X`` is a CSR matrix of shape (n_users, n_items) holding implicit-feedback weights.
Scoring is batched over users and vectorised over items (no per-user Python loops over items).

Every model is fitted on a matrix and later scores *a* matrix with the same item columns, not
necessarily the same rows (publishing rebuilds the matrix from the warehouse). Per-user state
learned at fit time (latent factors, user features, recent items) is found again through
:func:`row_keys` — a hash of each row's interaction pattern — and rows never seen at fit time
are treated as new users (fold-in from their history, or the popularity fallback when empty).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ml.frames import member, ranks


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
        rows = _positions(df[user_col], users, u_index)
        cols = _positions(df[item_col], items, i_index)
        ok = (rows >= 0) & (cols >= 0)
        w = df[weight_col].to_numpy(np.float32)[ok] if weight_col else np.ones(int(ok.sum()), np.float32)
        m = sp.csr_matrix(
            (w, (rows[ok], cols[ok])),
            shape=(len(users), len(items)),
            dtype=np.float32,
        )
        m.sum_duplicates()
        return cls(users, items, m, u_index, i_index)


def _positions(values: pd.Series, ids: np.ndarray, index: dict[Any, int]) -> np.ndarray:
    """Position of each value in ``ids`` (-1 when absent), shape (len(values),): a hash lookup
    over the whole column (a per-value dict map is several times slower on millions of rows)."""
    idx = pd.Index(ids)
    if idx.is_unique:
        # each distinct value looked up once (millions of rows hold far fewer distinct ids)
        codes, uniques = pd.factorize(values)
        found = np.append(np.asarray(idx.get_indexer(uniques), dtype=np.int64), -1)
        return found[codes]  # code -1 (a missing value) picks the appended -1
    return values.map(index).fillna(-1).to_numpy(np.int64)  # duplicate ids: the last one wins, as before


# users per dense (batch, n_items) score block in ``Recommender.recommend``: on the large shop
# (23k items) blocks of 512 made the row-wise top-k about 3x faster per row than blocks of 2048
SCORING_BATCH = 512


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top-k of a dense (n, n_items) array: (indices, scores), best first, equal
    scores by index. Only finite entries are returned; a row with fewer has index -1 and score
    -inf in its last slots.

    Only the entries at or above a lower bound of the row's k-th largest are ranked: the k-th
    largest of every ``stride``-th column (at least k entries of the row reach it). On the large
    shop's rows (23k items, k = 50) about 500 entries a row pass, and the whole took a third of
    a row-wise ``argpartition`` of every entry."""
    scores = np.asarray(scores)
    if not np.issubdtype(scores.dtype, np.floating):
        scores = scores.astype(np.float64)
    n_rows, n = scores.shape
    k = max(min(k, n), 0)
    stride = max(1, int(np.sqrt(n / (4 * max(k, 1)))))
    sample = scores[:, ::stride]
    sample = np.where(np.isfinite(sample), sample, -np.inf)
    kth = sample.shape[1] - min(k, sample.shape[1])
    low = np.partition(sample, kth, axis=1)[:, kth] if k else np.full(n_rows, np.inf)
    flat = scores.ravel()
    at = np.flatnonzero(scores >= low[:, None])
    at = at[np.isfinite(flat[at])]
    row, col = np.divmod(at, max(n, 1))
    # the passing entries as padded rows in column order, ranked by a stable sort
    count = np.bincount(row, minlength=n_rows)
    width = max(int(count.max(initial=0)), k)
    slot = np.arange(len(at)) - np.repeat(np.cumsum(count) - count, count)
    value = np.full((n_rows, width), -np.inf, dtype=scores.dtype)
    index = np.full((n_rows, width), -1, dtype=np.int64)
    value[row, slot], index[row, slot] = flat[at], col
    best = np.argsort(-value, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(index, best, axis=1), np.take_along_axis(value, best, axis=1)


def binarize(X: sp.spmatrix) -> sp.csr_matrix:
    """The (n_users, n_items) pattern of ``X`` as float32 ones."""
    B = sp.csr_matrix(X, dtype=np.float32, copy=True)
    B.eliminate_zeros()
    B.data[:] = 1.0
    return B


def row_keys(X: sp.csr_matrix) -> np.ndarray:
    """One 64-bit key per row from the row's item pattern (weights ignored), shape (n_rows,).

    Two rows with the same set of items get the same key; this is how a model finds again the
    per-user state it learned at fit time when it scores a rebuilt matrix."""
    X = sp.csr_matrix(X)
    out = np.empty(X.shape[0], dtype=np.uint64)
    ind, ptr = X.indices.astype(np.int64), X.indptr
    for r in range(X.shape[0]):  # one hash per user; no loop over items
        h = hashlib.blake2b(np.sort(ind[ptr[r] : ptr[r + 1]]).tobytes(), digest_size=8).digest()
        out[r] = np.frombuffer(h, dtype=np.uint64)[0]
    return out


def lookup_rows(keys_at_fit: np.ndarray, X: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
    """For each of ``rows`` of ``X``, the fit-time row with the same pattern, or -1 (unseen)."""
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(keys_at_fit, kind="stable")
    sorted_keys = keys_at_fit[order]
    q = row_keys(X[rows])
    found, pos = member(q, sorted_keys)
    return np.where(found, order[pos], -1).astype(np.int64)


def zscore_rows(scores: np.ndarray, seen: sp.csr_matrix | None = None) -> np.ndarray:
    """Standardise each row of a dense (n, n_items) score array, ignoring ``seen`` cells
    (the user's history, which is excluded from recommendations anyway)."""
    s = np.asarray(scores, dtype=np.float64)
    n = s.shape[1]
    total = s.sum(axis=1)
    total_sq = np.square(s).sum(axis=1)
    count = np.full(s.shape[0], float(n))
    if seen is not None and seen.nnz:
        S = binarize(seen)
        hit = np.asarray(S.multiply(s).sum(axis=1)).ravel()
        hit_sq = np.asarray(S.multiply(np.square(s)).sum(axis=1)).ravel()
        total, total_sq = total - hit, total_sq - hit_sq
        count = count - np.asarray(S.sum(axis=1)).ravel()
    count = np.maximum(count, 1.0)
    mean = total / count
    var = np.maximum(total_sq / count - mean**2, 0.0)
    return (s - mean[:, None]) / (np.sqrt(var)[:, None] + 1e-9)


class Recommender(ABC):
    """Interface. Subclasses implement ``fit`` and ``_score``; ``__init__`` only stores params.

    ``fit(X, **context)`` receives optional context by keyword (each model takes what it needs
    and ignores the rest): ``events`` (DataFrame with ``row``, ``col``, ``ts`` seconds —
    the interactions behind X in time order), ``item_features`` (CSR (n_items, n_features)),
    ``feature_names`` (n_features,), ``user_features`` ((n_users, d) float array),
    ``item_categories`` ((n_items,) int codes), ``category_transitions`` ((n_cat, n_cat)).
    """

    name = "base"

    def get_params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.endswith("_")}

    def set_params(self, **params: Any) -> Recommender:
        for k, v in params.items():
            if k not in self.get_params():
                raise ValueError(f"{type(self).__name__} has no parameter {k!r}")
            setattr(self, k, v)
        return self

    @abstractmethod
    def fit(self, X: sp.csr_matrix, **context: Any) -> Recommender:
        """Learn from the (n_users, n_items) matrix; returns self."""

    @abstractmethod
    def _score(self, X: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
        """Dense scores of shape (len(rows), n_items) for the users at ``rows`` of ``X``."""

    def _fit_fallback(self, X: sp.csr_matrix) -> None:
        """Remember the item count and a popularity ranking for users with no history."""
        pop = np.asarray(binarize(X).sum(axis=0)).ravel().astype(np.float64)
        self.n_items_ = int(X.shape[1])
        self.fallback_ = pop / pop.max() if pop.size and pop.max() > 0 else pop

    def scores(self, X: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
        """Dense (len(rows), n_items) scores (float32 when the model computes in float32, else
        float64); rows with an empty history get the popularity fallback (when the model keeps
        one) so cold users never get arbitrary items."""
        X = sp.csr_matrix(X)
        n_items = getattr(self, "n_items_", X.shape[1])
        if X.shape[1] != n_items:
            raise ValueError(f"{self.name}: X has {X.shape[1]} item columns, the model was fitted on {n_items}")
        rows = np.asarray(rows, dtype=np.int64)
        s = np.asarray(self._score(X, rows))
        if s.dtype != np.float32:  # float32 scores stay float32: half the memory traffic for top-k
            s = s.astype(np.float64, copy=False)
        fallback = getattr(self, "fallback_", None)
        if fallback is not None and len(rows):
            empty = np.diff(X.indptr)[rows] == 0
            if empty.any():
                s[empty] = fallback[None, :]
        return s

    def recommend(
        self,
        X: sp.csr_matrix,
        rows: np.ndarray | None = None,
        k: int = 10,
        exclude: sp.csr_matrix | None = None,
        batch_size: int = SCORING_BATCH,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k item indices and scores per user, best first, shape (n_rows, k).

        Users are scored ``batch_size`` at a time into a dense (batch_size, n_items) block
        (:data:`SCORING_BATCH`: less memory traffic per partition than larger blocks; on the
        large shop the whole call took 8.1-8.9 s on two threads against 10.7-12.6 s at 2048).

        ``exclude`` (same shape as X) marks items a user must not get (e.g. purchases);
        by default everything in X is excluded. Missing slots have index -1 and score -inf."""
        X = sp.csr_matrix(X)
        rows = np.arange(X.shape[0]) if rows is None else np.asarray(rows)
        excl = X if exclude is None else sp.csr_matrix(exclude)
        out_i = np.full((len(rows), k), -1, dtype=np.int64)
        out_s = np.full((len(rows), k), -np.inf, dtype=np.float64)
        for start in range(0, len(rows), batch_size):
            r = rows[start : start + batch_size]
            s = self.scores(X, r)
            e = excl[r].tocoo()
            s[e.row, e.col] = -np.inf
            idx, sc = top_k(s, k)
            out_i[start : start + len(r), : idx.shape[1]] = idx
            out_s[start : start + len(r), : sc.shape[1]] = sc
        return out_i, out_s

    def explain(self, X: sp.csr_matrix, rows: np.ndarray, items: np.ndarray) -> list[list[dict[str, Any]]]:
        """Per user row and recommended item: a dict with ``kind`` and details.

        Kinds: ``popular``; ``similar_item`` (``item``: the history item behind it);
        ``tag`` (``tag``: the category/tag shared with the history); ``rule`` (``rule``: text);
        ``similar_users``; ``none`` for empty slots."""
        return [[{"kind": self.name} if i >= 0 else {"kind": "none"} for i in it] for it in items]


def explain_by_item_weights(
    X: sp.csr_matrix, rows: np.ndarray, items: np.ndarray, weights: Any
) -> list[list[dict[str, Any]]]:
    """Explain each recommended item by the history item with the largest contribution
    ``x_ui * W[i, j]`` (``W`` dense or sparse (n_items, n_items)); shared by item-item models."""
    X = sp.csr_matrix(X)
    if sp.issparse(weights) and X.has_sorted_indices:
        return _explain_sparse_weights(X, np.asarray(rows), np.asarray(items), sp.csr_matrix(weights))
    out: list[list[dict[str, Any]]] = []
    for r, its in zip(rows, items, strict=True):  # per user, vectorised over its history x items
        lo, hi = X.indptr[r], X.indptr[r + 1]
        hist, w = X.indices[lo:hi], X.data[lo:hi]
        valid = np.asarray(its) >= 0
        if len(hist) == 0:
            out.append([{"kind": "popular"} if ok else {"kind": "none"} for ok in valid])
            continue
        cols = np.where(valid, its, 0)
        block = weights[hist][:, cols]
        block = block.toarray() if sp.issparse(block) else np.asarray(block)
        contrib = w[:, None] * block
        best = hist[np.argmax(contrib, axis=0)]
        strong = contrib.max(axis=0) > 0
        out.append(
            [
                ({"kind": "similar_item", "item": int(b)} if s else {"kind": "popular"}) if ok else {"kind": "none"}
                for b, s, ok in zip(best, strong, valid, strict=True)
            ]
        )
    return out


def explain_sources(
    X: sp.csr_matrix, rows: np.ndarray, items: np.ndarray, W: sp.spmatrix, chunk: int = 2048
) -> np.ndarray:
    """For every (user row, recommended item i): the history item (index) with the largest
    positive contribution ``x_uh * W[h, i]``, the first in index order on ties; -1 when none is
    positive (or the slot is empty). Shape of ``items``. ``W`` sparse (n_items, n_items); many
    users at a time, without densifying their histories."""
    X = sp.csr_matrix(X)
    if not X.has_sorted_indices:
        X = X.copy()
        X.sort_indices()
    WT = sp.csr_matrix(W).T.tocsr()
    WT.sort_indices()
    rows, items = np.asarray(rows), np.asarray(items)
    n_rows, k = items.shape
    n_items = X.shape[1]
    best = np.full((n_rows, k), -1, dtype=np.int64)

    def one(start: int) -> None:  # the rows of one chunk (each chunk writes its own rows of ``best``)
        Xc = X[rows[start : start + chunk]]
        # (local row, item) keys of the histories, sorted (CSR order), for lookups
        hist_keys = np.repeat(np.arange(Xc.shape[0], dtype=np.int64), np.diff(Xc.indptr)) * n_items + Xc.indices
        its = items[start : start + chunk]
        u_loc, slot = np.nonzero(its >= 0)
        col = its[u_loc, slot]
        lo, hi = WT.indptr[col], WT.indptr[col + 1]
        lens = hi - lo
        if len(hist_keys) == 0 or lens.sum() == 0:
            return
        starts = np.cumsum(lens) - lens  # each pair's first entry (entries are grouped by pair)
        pair = np.repeat(np.arange(len(col)), lens)
        pos = ranks(lens) + np.repeat(lo, lens)
        h = WT.indices[pos]
        key = u_loc[pair] * n_items + h
        found, at = member(key, hist_keys)
        contrib = np.where(found, Xc.data[at], 0.0) * WT.data[pos]
        first_pair, first = _strongest(contrib, pair, starts, lens)
        best[start + u_loc[first_pair], slot[first_pair]] = h[first]

    for start in range(0, n_rows, chunk):
        one(start)
    return best


def _strongest(
    contrib: np.ndarray, pair: np.ndarray, starts: np.ndarray, lens: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The pairs whose largest contribution is positive, and the entry holding it (the first on
    ties). ``contrib``: contributions grouped by pair (pair ``p`` owns ``lens[p]`` entries from
    ``starts[p]``); ``pair``: each entry's pair."""
    seg_max = np.full(len(lens), -np.inf)
    filled = lens > 0
    seg_max[filled] = np.maximum.reduceat(contrib, starts[filled])
    hit = np.flatnonzero((contrib == seg_max[pair]) & (seg_max[pair] > 0))
    first_pair, first = np.unique(pair[hit], return_index=True)
    return first_pair, hit[first]


def explain_dense_sources(
    X: sp.csr_matrix, rows: np.ndarray, items: np.ndarray, W: np.ndarray, index: np.ndarray | None = None
) -> np.ndarray:
    """:func:`explain_sources` for a dense ``W`` (m, m) over the item columns ``index`` (each
    item's row and column in ``W``, -1 for items outside it; None: ``W`` covers every item).
    Walks each user's history (x_uh * W[h, i] for every history item h), not W's columns:
    a dense column has an entry for every item."""
    X = sp.csr_matrix(X)
    if not X.has_sorted_indices:
        X = X.copy()
        X.sort_indices()
    rows, items = np.asarray(rows), np.asarray(items)
    best = np.full(items.shape, -1, dtype=np.int64)
    chunk = 8192
    for start in range(0, len(rows), chunk):
        Xc = X[rows[start : start + chunk]]
        its = items[start : start + chunk]
        u_loc, slot = np.nonzero(its >= 0)
        col = its[u_loc, slot]
        lens = np.diff(Xc.indptr)[u_loc]  # each (user, item) pair's history length
        if lens.sum() == 0:
            continue
        starts = np.cumsum(lens) - lens
        pair = np.repeat(np.arange(len(col)), lens)
        pos = ranks(lens) + np.repeat(Xc.indptr[u_loc], lens)
        h = Xc.indices[pos]
        wh, wi = (h, col[pair]) if index is None else (index[h], index[col[pair]])
        inside = (wh >= 0) & (wi >= 0)
        contrib = np.zeros(len(h))
        contrib[inside] = Xc.data[pos[inside]] * W[wh[inside], wi[inside]]
        first_pair, first = _strongest(contrib, pair, starts, lens)
        best[start + u_loc[first_pair], slot[first_pair]] = h[first]
    return best


def sources_as_reasons(best: np.ndarray, items: np.ndarray) -> list[list[dict[str, Any]]]:
    """:meth:`Recommender.explain`'s dicts from source history items (``explain_sources``)."""
    valid = np.asarray(items) >= 0
    return [
        [
            ({"kind": "similar_item", "item": b} if b >= 0 else {"kind": "popular"}) if ok else {"kind": "none"}
            for b, ok in zip(brow, vrow, strict=True)
        ]
        for brow, vrow in zip(best.tolist(), valid.tolist(), strict=True)
    ]


def _explain_sparse_weights(
    X: sp.csr_matrix, rows: np.ndarray, items: np.ndarray, W: sp.csr_matrix
) -> list[list[dict[str, Any]]]:
    """:func:`explain_by_item_weights` for a sparse ``W`` through :func:`explain_sources`."""
    return sources_as_reasons(explain_sources(X, rows, items, W), items)


def explain_by_item_vectors(
    X: sp.csr_matrix, rows: np.ndarray, items: np.ndarray, vectors: np.ndarray
) -> list[list[dict[str, Any]]]:
    """Explain each recommended item by the history item whose vector (row of ``vectors``,
    shape (n_items, d)) has the largest dot product with it; used by embedding models."""
    out: list[list[dict[str, Any]]] = []
    X = sp.csr_matrix(X)
    for r, its in zip(rows, items, strict=True):
        hist = X.indices[X.indptr[r] : X.indptr[r + 1]]
        valid = np.asarray(its) >= 0
        if len(hist) == 0:
            out.append([{"kind": "popular"} if ok else {"kind": "none"} for ok in valid])
            continue
        sim = vectors[hist] @ vectors[np.where(valid, its, 0)].T
        best = hist[np.argmax(sim, axis=0)]
        out.append(
            [
                {"kind": "similar_item", "item": int(b)} if ok else {"kind": "none"}
                for b, ok in zip(best, valid, strict=True)
            ]
        )
    return out
