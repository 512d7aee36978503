"""Held-out evaluation of taggers: metrics with one signature, registered by name.

Every metric is ``fn(y_true, y_pred, scores, k) -> float`` with boolean ``y_true``/``y_pred``
and float ``scores``, all of shape (n_items, n_tags) over the same tag columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ml.tagging.base import binarize

TagMetric = Callable[[np.ndarray, np.ndarray, np.ndarray, int], float]


def _f1_per_tag(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp = (y_true & y_pred).sum(axis=0).astype(np.float64)
    fp = (~y_true & y_pred).sum(axis=0).astype(np.float64)
    fn = (y_true & ~y_pred).sum(axis=0).astype(np.float64)
    return tp, fp, fn


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Unweighted mean of per-tag F1 over the tags present in ``y_true`` (each tag counts once)."""
    tp, fp, fn = _f1_per_tag(y_true, y_pred)
    present = y_true.sum(axis=0) > 0
    if not present.any():
        return 0.0
    denom = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(f1[present].mean())


def micro_f1(y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray, k: int) -> float:
    """F1 over all (item, tag) decisions pooled (frequent tags weigh more)."""
    tp, fp, fn = (float(x.sum()) for x in _f1_per_tag(y_true, y_pred))
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


def precision_at_k(y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Mean over items of the share of the k best-scored tags that are true."""
    if scores.shape[0] == 0:
        return 0.0
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.take_along_axis(y_true, top, axis=1).mean())


METRICS: dict[str, TagMetric] = {"macro_f1": macro_f1, "micro_f1": micro_f1, "precision_at_k": precision_at_k}


@dataclass(frozen=True)
class TaggerEvaluation:
    """Scores a tagger's held-out output; ``k`` is the cut-off of precision@k per item."""

    k: int = 3
    metrics: tuple[str, ...] = ("macro_f1", "micro_f1", "precision_at_k")

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown:
            raise ValueError(f"unknown tag metrics {unknown}; known: {sorted(METRICS)}")

    def evaluate(
        self,
        true_labels: Sequence[Sequence[str]],
        assigned: np.ndarray,
        scores: np.ndarray,
        tags: Sequence[str],
    ) -> dict[str, float]:
        """Metrics of a boolean assignment and scores (n_items, n_tags, columns ``tags``) against
        the true tag lists. True tags the tagger does not know count as misses."""
        known = list(tags)
        extra = sorted({t for ts in true_labels for t in ts} - set(known))
        y_true, _ = binarize(true_labels, known + extra)
        pad = np.zeros((len(true_labels), len(extra)), dtype=bool)
        y_pred = np.hstack([np.asarray(assigned, dtype=bool), pad])
        sc = np.hstack([np.asarray(scores, dtype=np.float64), pad.astype(np.float64) - 1.0])
        out = {}
        for m in self.metrics:
            name = f"precision@{self.k}" if m == "precision_at_k" else m
            out[name] = METRICS[m](y_true, y_pred, sc, self.k)
        return out
