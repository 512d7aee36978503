"""Top-k metrics with one shared signature, registered by name.

Every metric is ``fn(recommended, relevant, k, ctx) -> float`` where
``recommended`` is an int array (n_users, >= k) of item indices, best first, -1 for empty
slots; ``relevant`` is a list of n_users sets of relevant item indices; ``ctx`` carries
catalogue-level facts (n_items, item popularity, item vectors) for beyond-accuracy metrics.
Users with no relevant items are skipped by the accuracy metrics (the usual convention).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class EvalContext:
    n_items: int
    item_popularity: np.ndarray | None = None  # (n_items,) share of users who interacted
    item_vectors: np.ndarray | None = None  # (n_items, d) for intra-list diversity


Metric = Callable[[np.ndarray, Sequence[set[int]], int, EvalContext | None], float]


def _hits(recommended: np.ndarray, relevant: Sequence[set[int]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean hits (n_eval, k) and the relevant-set sizes, for users with >= 1 relevant item."""
    rec = np.asarray(recommended)[:, :k]
    keep = np.array([len(r) > 0 for r in relevant], dtype=bool)
    rec = rec[keep]
    rel = [r for r, ok in zip(relevant, keep, strict=True) if ok]
    hits = np.zeros(rec.shape, dtype=bool)
    for u, r in enumerate(rel):
        hits[u] = np.isin(rec[u], list(r)) & (rec[u] >= 0)
    sizes = np.array([len(r) for r in rel], dtype=np.float64)
    return hits, sizes


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
    """Intra-list diversity: mean pairwise cosine distance of item vectors within each list."""
    if ctx is None or ctx.item_vectors is None:
        raise ValueError("diversity needs ctx.item_vectors")
    rec = np.asarray(recommended)[:, :k]
    V = ctx.item_vectors / np.maximum(np.linalg.norm(ctx.item_vectors, axis=1, keepdims=True), 1e-12)
    vals = []
    for row in rec:
        it = row[row >= 0]
        if len(it) < 2:
            continue
        sim = V[it] @ V[it].T
        n = len(it)
        vals.append(1.0 - (sim.sum() - np.trace(sim)) / (n * (n - 1)))
    return float(np.mean(vals)) if vals else 0.0


def personalisation_at_k(
    recommended: np.ndarray, relevant: Sequence[set[int]], k: int, ctx: EvalContext | None = None
) -> float:
    """1 - mean pairwise overlap (cosine of binary lists) between users' top-k lists."""
    rec = np.asarray(recommended)[:, :k]
    n_users = len(rec)
    if n_users < 2:
        return 0.0
    n_items = int(ctx.n_items) if ctx else int(rec.max()) + 1
    import scipy.sparse as sp

    rows = np.repeat(np.arange(n_users), rec.shape[1])
    cols = rec.ravel()
    ok = cols >= 0
    M = sp.csr_matrix((np.ones(ok.sum()), (rows[ok], cols[ok])), shape=(n_users, n_items))
    lens = np.sqrt(np.asarray(M.sum(axis=1)).ravel())
    overlap = (M @ M.T).toarray() / np.maximum(np.outer(lens, lens), 1e-12)
    mean_sim = (overlap.sum() - np.trace(overlap)) / (n_users * (n_users - 1))
    return float(1.0 - mean_sim)


METRICS: dict[str, Metric] = {
    "precision": precision_at_k,
    "recall": recall_at_k,
    "ndcg": ndcg_at_k,
    "map": map_at_k,
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
    metrics: Sequence[str] = ("precision", "recall", "ndcg", "map", "hit_rate", "mrr", "coverage"),
) -> dict[str, float]:
    """Compute several metrics; keys are ``<name>@<k>``."""
    return {f"{m}@{k}": METRICS[m](recommended, relevant, k, ctx) for m in metrics}
