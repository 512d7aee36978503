"""Baseline taggers: TF-IDF of title + description + attributes, one binary classifier per tag
(one-vs-rest) with multinomial Naive Bayes or logistic regression (scikit-learn)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from ml.tagging.base import Tagger
from ml.tagging.vocabulary import Vocabulary


class _TfidfOneVsRest(Tagger):
    """TF-IDF (word n-grams, sublinear tf) followed by one binary classifier per tag."""

    ngram_range: tuple[int, int]
    min_df: int

    @abstractmethod
    def _classifier(self) -> Any:
        """A fresh binary scikit-learn classifier with ``predict_proba`` (one per tag)."""

    def _fit(self, texts: list[str], Y: np.ndarray, vocabulary: Vocabulary | None) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.multiclass import OneVsRestClassifier

        self.vectorizer_ = TfidfVectorizer(
            ngram_range=tuple(self.ngram_range), min_df=self.min_df, sublinear_tf=True, strip_accents="unicode"
        )
        X = self.vectorizer_.fit_transform(texts)
        self.classifier_ = OneVsRestClassifier(self._classifier()).fit(X, Y.astype(np.int64))

    def predict_scores(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, len(self.tags_)), dtype=np.float32)
        X = self.vectorizer_.transform(list(texts))
        return np.asarray(self.classifier_.predict_proba(X), dtype=np.float32)


class NaiveBayesTagger(_TfidfOneVsRest):
    """One-vs-rest multinomial Naive Bayes over TF-IDF; ``alpha`` is the additive smoothing."""

    name = "naive_bayes"

    def __init__(self, alpha: float = 0.1, ngram_range: tuple[int, int] = (1, 2), min_df: int = 1):
        self.alpha = alpha
        self.ngram_range = ngram_range
        self.min_df = min_df

    def _classifier(self) -> Any:
        from sklearn.naive_bayes import MultinomialNB

        return MultinomialNB(alpha=self.alpha)


class LogisticRegressionTagger(_TfidfOneVsRest):
    """One-vs-rest L2 logistic regression over TF-IDF; ``C`` is the inverse regularisation."""

    name = "logistic_regression"

    def __init__(
        self,
        C: float = 10.0,
        ngram_range: tuple[int, int] = (1, 2),
        min_df: int = 1,
        class_weight: str | None = None,
        max_iter: int = 2000,
    ):
        self.C = C
        self.ngram_range = ngram_range
        self.min_df = min_df
        self.class_weight = class_weight
        self.max_iter = max_iter

    def _classifier(self) -> Any:
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=self.max_iter)
