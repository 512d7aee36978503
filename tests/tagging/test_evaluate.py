"""Tagging metrics: limits and invariants."""

from __future__ import annotations

import numpy as np
import pytest

from ml.tagging.evaluate import METRICS, TaggerEvaluation, macro_f1, micro_f1, precision_at_k

pytestmark = pytest.mark.unit


def _random_case(seed: int = 0, n: int = 40, t: int = 6):
    rng = np.random.default_rng(seed)
    y = rng.random((n, t)) < 0.3
    y[:, 0] = True
    scores = rng.random((n, t))
    return y, scores


def test_perfect_predictions_score_one():
    y, _ = _random_case()
    for fn in (macro_f1, micro_f1):
        assert fn(y, y, y.astype(float), 3) == pytest.approx(1.0)
    scores = y.astype(float)
    k = int(y.sum(axis=1).min())
    assert precision_at_k(y, y, scores, k) == pytest.approx(1.0)


def test_macro_weighs_every_tag_once_and_micro_pools_decisions():
    y = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], dtype=bool)
    pred = np.array([[1, 0], [1, 0], [1, 0], [1, 0]], dtype=bool)  # rare tag always missed
    assert macro_f1(y, pred, pred.astype(float), 1) == pytest.approx((6 / 7 + 0.0) / 2)
    assert micro_f1(y, pred, pred.astype(float), 1) == pytest.approx(6 / 8)


def test_evaluation_counts_unknown_true_tags_as_misses_and_validates_itself():
    ev = TaggerEvaluation(k=2)
    assigned = np.array([[True, False], [False, True]])
    scores = np.array([[0.9, 0.1], [0.2, 0.8]])
    full = ev.evaluate([["a"], ["b"]], assigned, scores, ["a", "b"])
    partial = ev.evaluate([["a", "c"], ["b"]], assigned, scores, ["a", "b"])
    assert full["macro_f1"] == pytest.approx(1.0)
    assert partial["macro_f1"] < full["macro_f1"] and partial["micro_f1"] < full["micro_f1"]
    assert set(full) == {"macro_f1", "micro_f1", "precision@2"}
    with pytest.raises(ValueError, match="k must be"):
        TaggerEvaluation(k=0)
    with pytest.raises(ValueError, match="unknown tag metrics"):
        TaggerEvaluation(metrics=("auc",))
    assert set(METRICS) == {"macro_f1", "micro_f1", "precision_at_k"}
