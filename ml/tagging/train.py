"""Training and held-out evaluation of one tagger candidate (used by the DAG, CLI and bench)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ml.tagging.base import Tagger
from ml.tagging.data import TrainingSet
from ml.tagging.evaluate import TaggerEvaluation
from ml.tagging.vocabulary import Vocabulary


def make_tagger(name: str, **params: Any) -> Tagger:
    """A tagger by registry name: ``naive_bayes``, ``logistic_regression`` or ``transformer``."""
    from ml.tagging.baselines import LogisticRegressionTagger, NaiveBayesTagger
    from ml.tagging.transformer import TransformerTagger

    models: dict[str, type[Tagger]] = {
        "naive_bayes": NaiveBayesTagger,
        "logistic_regression": LogisticRegressionTagger,
        "transformer": TransformerTagger,
    }
    if name not in models:
        raise ValueError(f"unknown tagger {name!r}; choose one of {sorted(models)}")
    if "ngram_range" in params:
        params["ngram_range"] = tuple(params["ngram_range"])
    return models[name](**params)


def evaluate_tagger(
    tagger: Tagger, texts: Sequence[str], labels: Sequence[Sequence[str]], evaluation: TaggerEvaluation | None = None
) -> dict[str, float]:
    """Held-out metrics plus inference throughput (``items_per_second``, wall clock)."""
    evaluation = evaluation or TaggerEvaluation()
    t0 = time.perf_counter()
    assigned, scores = tagger.predict_matrix(texts)
    seconds = time.perf_counter() - t0
    metrics = evaluation.evaluate(labels, assigned, scores, [str(t) for t in tagger.tags_])
    metrics["predict_seconds"] = round(seconds, 3)
    metrics["items_per_second"] = round(len(texts) / seconds, 1) if seconds > 0 else float("inf")
    return metrics


def fit_and_evaluate(
    model: str, params: dict[str, Any], data: TrainingSet, vocabulary: Vocabulary
) -> tuple[Tagger, dict[str, float]]:
    """Fit on the train part, evaluate on the held-out part; returns (tagger, metrics)."""
    tr_texts, tr_labels, _ = data.part(test=False)
    te_texts, te_labels, _ = data.part(test=True)
    if not tr_texts:
        raise ValueError("no labelled training items")
    tagger = make_tagger(model, **dict(params))
    t0 = time.perf_counter()
    tagger.fit(tr_texts, tr_labels, vocabulary)
    fit_seconds = time.perf_counter() - t0
    metrics: dict[str, float] = {}
    if te_texts:
        metrics.update(evaluate_tagger(tagger, te_texts, te_labels))
    metrics["fit_seconds"] = round(fit_seconds, 3)
    metrics["train_items"] = float(len(tr_texts))
    metrics["test_items"] = float(len(te_texts))
    metrics["tags"] = float(len(tagger.tags_))
    return tagger, metrics


def finite_scores(tagger: Tagger, texts: Sequence[str]) -> bool:
    """Smoke check: scores for a few texts have the right shape and are finite in [0, 1]."""
    s = tagger.predict_scores(list(texts))
    return bool(
        s.shape == (len(texts), len(tagger.tags_)) and np.isfinite(s).all() and (s >= 0).all() and (s <= 1).all()
    )


def select_params(
    model: str,
    grid: Sequence[dict[str, Any]],
    data: TrainingSet,
    vocabulary: Vocabulary,
    valid_share: float = 0.2,
    seed: int = 1,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Pick hyper-parameters on a validation part of the *training* items (never the held-out
    test items): each candidate fits on the rest and is scored by macro F1. Returns the best
    params and every trial."""
    from ml.tagging.data import is_test_item

    texts, labels, ids = data.part(test=False)
    valid = is_test_item(ids, valid_share, seed)
    fit_idx, val_idx = np.flatnonzero(~valid), np.flatnonzero(valid)
    if len(fit_idx) == 0 or len(val_idx) == 0:
        raise ValueError("too few training items to hold out a validation part")
    trials: list[dict[str, Any]] = []
    for params in grid:
        tagger = make_tagger(model, **dict(params))
        tagger.fit([texts[i] for i in fit_idx], [labels[i] for i in fit_idx], vocabulary)
        m = evaluate_tagger(tagger, [texts[i] for i in val_idx], [labels[i] for i in val_idx])
        trials.append({"params": dict(params), "validation_macro_f1": m["macro_f1"]})
    best = max(trials, key=lambda t: float(t["validation_macro_f1"]))
    return best["params"], trials
