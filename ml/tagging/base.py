"""The tagger interface shared by every item tagger.

Shapes: ``texts`` is a sequence of n item strings (see :mod:`ml.tagging.text`); ``labels`` is a
sequence of n tag lists; scores are a float32 array of shape (n, n_tags) in [0, 1], columns in
the order of the learned ``tags_``.

Decoding is the same for every tagger: a tag *kind* that every labelled training item carries
exactly once (an item has one leaf category, one style, one brand tier) is *exclusive*, and
its best-scoring tag is always assigned; tags of other kinds are assigned at ``threshold``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from ml.tagging.vocabulary import Vocabulary


def binarize(labels: Sequence[Sequence[str]], tags: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Label lists -> a boolean (n, n_tags) matrix and its tag order (sorted unless given).
    Tags outside ``tags`` are ignored."""
    order = sorted({t for ts in labels for t in ts}) if tags is None else list(tags)
    index = {t: j for j, t in enumerate(order)}
    Y = np.zeros((len(labels), len(order)), dtype=bool)
    for i, ts in enumerate(labels):
        for t in ts:
            j = index.get(t)
            if j is not None:
                Y[i, j] = True
    return Y, order


def kind_of(tag: str, vocabulary: Vocabulary | None = None) -> str:
    """The tag's kind from the vocabulary, else its id prefix (``style:eco`` -> ``style``)."""
    return vocabulary.kind(tag) if vocabulary is not None else tag.split(":", 1)[0]


def exclusive_kinds(Y: np.ndarray, kinds: Sequence[str]) -> list[str]:
    """Kinds that every row of the boolean label matrix ``Y`` (n, n_tags) carries exactly once."""
    out = []
    arr = np.asarray(kinds)
    for k in sorted(set(kinds)):
        per_row = Y[:, arr == k].sum(axis=1)
        if len(per_row) and (per_row == 1).all():
            out.append(k)
    return out


def decode(scores: np.ndarray, kinds: Sequence[str], exclusive: Sequence[str], threshold: float = 0.5) -> np.ndarray:
    """Boolean (n, n_tags) assignment from scores (n, n_tags): argmax within each exclusive kind,
    ``score >= threshold`` elsewhere."""
    scores = np.asarray(scores)
    out = scores >= threshold
    arr = np.asarray(kinds)
    for k in exclusive:
        cols = np.flatnonzero(arr == k)
        if len(cols) == 0 or scores.shape[0] == 0:
            continue
        out[:, cols] = False
        best = cols[np.argmax(scores[:, cols], axis=1)]
        out[np.arange(scores.shape[0]), best] = True
    return out


class Tagger(ABC):
    """Multi-label item tagger. ``__init__`` only stores hyper-parameters; ``fit`` returns self
    and sets ``tags_`` (the label set), ``kinds_`` (kind per tag) and ``exclusive_kinds_``."""

    name = "base"

    def get_params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_")}

    def fit(
        self, texts: Sequence[str], labels: Sequence[Sequence[str]], vocabulary: Vocabulary | None = None
    ) -> Tagger:
        """Learn tags from n texts and their n label lists (tags seen in ``labels`` only)."""
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} label lists")
        Y, tags = binarize(labels)
        if not tags:
            raise ValueError("no labels to learn from")
        self.tags_ = np.asarray(tags, dtype=object)
        self.kinds_ = [kind_of(t, vocabulary) for t in tags]
        self.exclusive_kinds_ = exclusive_kinds(Y, self.kinds_)
        self._fit(list(texts), Y, vocabulary)
        return self

    @abstractmethod
    def _fit(self, texts: list[str], Y: np.ndarray, vocabulary: Vocabulary | None) -> None:
        """Learn from texts and the boolean label matrix Y of shape (n, n_tags)."""

    @abstractmethod
    def predict_scores(self, texts: Sequence[str]) -> np.ndarray:
        """Scores of shape (n, n_tags) in [0, 1], columns ordered as ``tags_``."""

    def predict_matrix(self, texts: Sequence[str], threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
        """(assigned, scores): a boolean (n, n_tags) assignment and the scores it came from."""
        scores = self.predict_scores(texts)
        return decode(scores, self.kinds_, self.exclusive_kinds_, threshold), scores

    def predict(self, texts: Sequence[str], threshold: float = 0.5) -> list[list[str]]:
        """Assigned tags per text."""
        assigned, _ = self.predict_matrix(texts, threshold)
        return [[str(t) for t in self.tags_[row]] for row in assigned]
