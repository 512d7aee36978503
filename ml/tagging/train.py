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
