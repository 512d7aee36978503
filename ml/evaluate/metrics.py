"""Top-k metrics with one shared signature, registered by name.

Every metric is ``fn(recommended, relevant, k, ctx) -> float`` where
``recommended`` is an int array (n_users, >= k) of item indices, best first, -1 for empty
slots; ``relevant`` is a list of n_users sets of relevant item indices; ``ctx`` carries
catalogue-level facts (n_items, item popularity, item vectors) for beyond-accuracy metrics.

Conventions (those of Microsoft Recommenders' ``python_evaluation``, so numbers compare with
their published benchmark tables): relevance is binary; the users evaluated are the users with
at least one relevant item (users with none are skipped by the accuracy metrics); a relevant
item the model could never rank (e.g. unseen in training — give it an index >= n_items) still
counts in |relevant|; precision@k divides hits by k; recall@k by |relevant|; nDCG@k uses
gains 1/log2(1 + rank) and the ideal DCG of min(|relevant|, k) hits. Two MAP@k variants:
``map`` divides the sum of precisions at the hits by min(|relevant|, k) (the common
definition, 1.0 for a perfect list), ``map_rel`` by |relevant| (Spark / MS Recommenders).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass
class EvalContext:
    n_items: int
    item_popularity: np.ndarray | None = None  # (n_items,) share of users who interacted
    item_vectors: np.ndarray | None = None  # (n_items, d) for intra-list diversity

    def __post_init__(self) -> None:
        if self.n_items <= 0:
            raise ValueError(f"EvalContext.n_items must be positive, got {self.n_items}")
        if self.item_popularity is not None and len(self.item_popularity) != self.n_items:
            raise ValueError("EvalContext.item_popularity must have n_items entries")
        if self.item_vectors is not None and len(self.item_vectors) != self.n_items:
            raise ValueError("EvalContext.item_vectors must have n_items rows")


Metric = Callable[[np.ndarray, Sequence[set[int]], int, EvalContext | None], float]


def _hits(recommended: np.ndarray, relevant: Sequence[set[int]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean hits (n_eval, k) and the relevant-set sizes, for users with >= 1 relevant item."""
    rec = np.asarray(recommended, dtype=np.int64)[:, :k]
    if len(rec) != len(relevant):
        raise ValueError(f"{len(rec)} recommendation rows but {len(relevant)} relevant sets")
    sizes_all = np.fromiter((len(r) for r in relevant), dtype=np.int64, count=len(relevant))
    keep = sizes_all > 0
    rec = rec[keep]
    if len(rec) == 0:
        return np.zeros(rec.shape, dtype=bool), np.zeros(0)
    rel_rows = np.repeat(np.arange(int(keep.sum())), sizes_all[keep])
    rel_cols = np.fromiter((int(i) for r, ok in zip(relevant, keep, strict=True) if ok for i in r), dtype=np.int64)
    width = int(max(rec.max(initial=-1), rel_cols.max(initial=-1))) + 1
    R = sp.csr_matrix((np.ones(len(rel_cols), dtype=bool), (rel_rows, rel_cols)), shape=(len(rec), max(width, 1)))
    safe = np.where(rec >= 0, rec, 0)
    hits = np.asarray(R[np.repeat(np.arange(len(rec)), rec.shape[1]), safe.ravel()]).reshape(rec.shape).astype(bool)
    hits &= rec >= 0
    return hits, sizes_all[keep].astype(np.float64)


def precision_at_k(
    recommended: np.ndarray, relevant: Sequence[set[int]], k: int, ctx: EvalContext | None = None
) -> float:
    hits, _ = _hits(recommended, relevant, k)
    return float(hits.sum(axis=1).mean() / k) if len(hits) else 0.0


def recall_at_k(recommended: np.ndarray, relevant: Sequence[set[int]], k: int, ctx: EvalContext | None = None) -> float:
    hits, sizes = _hits(recommended, relevant, k)
    return float((hits.sum(axis=1) / sizes).mean()) if len(hits) else 0.0


def ndcg_at_k(recommended: np.ndarray, relevant: Sequence[set[int]], k: int, ctx: EvalContext | None = None) -> float:
    hits, sizes = _hits(recommended, relevant, k)
    if not len(hits):
        return 0.0
    discounts = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))
    dcg = (hits * discounts).sum(axis=1)
    ideal_n = np.minimum(sizes, hits.shape[1]).astype(int)
    cum = np.concatenate([[0.0], np.cumsum(discounts)])
    return float((dcg / cum[ideal_n]).mean())


def map_at_k(recommended: np.ndarray, relevant: Sequence[set[int]], k: int, ctx: EvalContext | None = None) -> float:
    """Mean average precision at k, normalised by min(|relevant|, k)."""
    hits, sizes = _hits(recommended, relevant, k)
    if not len(hits):
        return 0.0
    prec = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    ap = (prec * hits).sum(axis=1) / np.minimum(sizes, hits.shape[1])
    return float(ap.mean())


def map_rel_at_k(
    recommended: np.ndarray, relevant: Sequence[set[int]], k: int, ctx: EvalContext | None = None
) -> float:
    """Mean average precision at k normalised by |relevant| (Spark / MS Recommenders)."""
    hits, sizes = _hits(recommended, relevant, k)
    if not len(hits):
        return 0.0
    prec = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    return float(((prec * hits).sum(axis=1) / sizes).mean())


def hit_rate_at_k(
    recommended: np.ndarray, relevant: Sequence[set[int]], k: int, ctx: EvalContext | None = None
) -> float:
    hits, _ = _hits(recommended, relevant, k)
    return float(hits.any(axis=1).mean()) if len(hits) else 0.0


def mrr_at_k(recommended: np.ndarray, relevant: Sequence[set[int]], k: int, ctx: EvalContext | None = None) -> float:
    hits, _ = _hits(recommended, relevant, k)
    if not len(hits):
        return 0.0
    first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, np.inf)
    return float((1.0 / first).mean())


def coverage_at_k(
    recommended: np.ndarray, relevant: Sequence[set[int]], k: int, ctx: EvalContext | None = None
) -> float:
    """Share of the catalogue that appears in at least one top-k list."""
    if ctx is None:
        raise ValueError("coverage needs ctx.n_items")
    rec = np.asarray(recommended)[:, :k]
    return float(len(np.unique(rec[rec >= 0])) / ctx.n_items)


def novelty_at_k(
    recommended: np.ndarray, relevant: Sequence[set[int]], k: int, ctx: EvalContext | None = None
) -> float:
    """Mean self-information -log2(p(item)) of recommended items (p = share of users)."""
    if ctx is None or ctx.item_popularity is None:
        raise ValueError("novelty needs ctx.item_popularity")
    rec = np.asarray(recommended)[:, :k]
    p = ctx.item_popularity[rec[rec >= 0]]
    p = np.clip(p, 1e-12, 1.0)
    return float((-np.log2(p)).mean()) if len(p) else 0.0


def diversity_at_k(
    recommended: np.ndarray, relevant: Sequence[set[int]], k: int, ctx: EvalContext | None = None
) -> float:
    """Intra-list diversity: mean pairwise cosine distance of item vectors within each list
    (lists with fewer than two items are skipped)."""
    if ctx is None or ctx.item_vectors is None:
        raise ValueError("diversity needs ctx.item_vectors")
    rec = np.asarray(recommended)[:, :k]
    V = ctx.item_vectors / np.maximum(np.linalg.norm(ctx.item_vectors, axis=1, keepdims=True), 1e-12)
    valid = rec >= 0
    n = valid.sum(axis=1)
    vecs = V[np.where(valid, rec, 0)] * valid[:, :, None]  # (n_users, k, d)
    total = vecs.sum(axis=1)
    pair_sum = np.einsum("ud,ud->u", total, total) - np.einsum("ukd,ukd->u", vecs, vecs)
    ok = n >= 2
    if not ok.any():
        return 0.0
    return float(np.mean(1.0 - pair_sum[ok] / (n[ok] * (n[ok] - 1))))


def personalisation_at_k(
    recommended: np.ndarray, relevant: Sequence[set[int]], k: int, ctx: EvalContext | None = None
) -> float:
    """1 - mean pairwise cosine overlap between users' top-k lists (as binary item vectors).
    Computed in O(n_users * k) from the sum of the normalised lists, never as an n x n matrix."""
    rec = np.asarray(recommended)[:, :k]
    n_users = len(rec)
    if n_users < 2:
        return 0.0
    n_items = int(ctx.n_items) if ctx else int(rec.max()) + 1
    rows = np.repeat(np.arange(n_users), rec.shape[1])
    cols = rec.ravel()
    ok = cols >= 0
    M = sp.csr_matrix((np.ones(ok.sum()), (rows[ok], cols[ok])), shape=(n_users, n_items))
    M.data[:] = 1.0
    lens = np.sqrt(np.asarray(M.sum(axis=1)).ravel())
    N = sp.diags(1.0 / np.maximum(lens, 1e-12)) @ M
    total = np.asarray(N.sum(axis=0)).ravel()
    self_sim = float((lens > 0).sum())
    mean_sim = (total @ total - self_sim) / (n_users * (n_users - 1))
    return float(1.0 - mean_sim)


METRICS: dict[str, Metric] = {
    "precision": precision_at_k,
    "recall": recall_at_k,
    "ndcg": ndcg_at_k,
    "map": map_at_k,
    "map_rel": map_rel_at_k,
    "hit_rate": hit_rate_at_k,
    "mrr": mrr_at_k,
    "coverage": coverage_at_k,
    "novelty": novelty_at_k,
    "diversity": diversity_at_k,
    "personalisation": personalisation_at_k,
}


def evaluate(
    recommended: np.ndarray,
    relevant: Sequence[set[int]],
    k: int = 10,
    ctx: EvalContext | None = None,
    metrics: Sequence[str] = ("precision", "recall", "ndcg", "map", "map_rel", "hit_rate", "mrr", "coverage"),
) -> dict[str, float]:
    """Compute several metrics; keys are ``<name>@<k>``."""
    return {f"{m}@{k}": METRICS[m](recommended, relevant, k, ctx) for m in metrics}
