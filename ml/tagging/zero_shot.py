"""Zero-shot tags: a tag with no labelled items is assigned by the cosine similarity between the
item's sentence embedding and the embedding of the tag's vocabulary description."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ml.tagging import encoder as enc
from ml.tagging.defaults import DEFAULT_ENCODER


class ZeroShotTagger:
    """Scores texts against tag descriptions with the *pre-trained* encoder (mean pooling).

    ``threshold`` is the cosine similarity from which a tag is assigned; ``max_length`` bounds
    tokens per text, ``batch_size`` items per no-grad forward pass, ``threads`` torch threads.
    ``fit(tags, descriptions)`` learns ``tags_`` and ``tag_embeddings_`` (n_tags, dim).
    """

    name = "zero_shot"

    def __init__(
        self,
        model_name: str = DEFAULT_ENCODER,
        threshold: float = 0.35,
        max_length: int = 128,
        batch_size: int = 64,
        threads: int | None = None,
    ):
        self.model_name = model_name
        self.threshold = threshold
        self.max_length = max_length
        self.batch_size = batch_size
        self.threads = threads

    def get_params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.endswith("_")}

    def fit(self, tags: Sequence[str], descriptions: Sequence[str]) -> ZeroShotTagger:
        if len(tags) != len(descriptions):
            raise ValueError(f"{len(tags)} tags but {len(descriptions)} descriptions")
        empty = [t for t, d in zip(tags, descriptions, strict=True) if not str(d or "").strip()]
        if empty:
            raise ValueError(f"zero-shot tags need a description; missing for {empty}")
        enc.set_threads(self.threads)
        self.tokenizer_, self.encoder_ = enc.load(self.model_name)
        self.tags_ = np.asarray(list(tags), dtype=object)
        self.tag_embeddings_ = enc.embed(
            self.tokenizer_, self.encoder_, [str(d) for d in descriptions], self.batch_size, self.max_length
        )
        return self

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Sentence embeddings (n, dim), L2-normalised."""
        enc.set_threads(self.threads)
        return enc.embed(self.tokenizer_, self.encoder_, list(texts), self.batch_size, self.max_length)

    def predict_scores(self, texts: Sequence[str]) -> np.ndarray:
        """Cosine similarity (n, n_tags) between each text and each tag description."""
        if len(self.tags_) == 0:
            return np.zeros((len(texts), 0), dtype=np.float32)
        return self.embed(texts) @ self.tag_embeddings_.T

    def predict(self, texts: Sequence[str]) -> list[list[str]]:
        scores = self.predict_scores(texts)
        return [[str(t) for t in self.tags_[row >= self.threshold]] for row in scores]
