"""Review sentiment classifiers (3 classes: ``labels.LABELS``), scikit-learn style.

* ``tfidf_logreg``: word and word-pair TF-IDF, class-balanced logistic regression.
* ``minilm``: all-MiniLM-L6-v2 (``ml.tagging.encoder``, offline) fine-tuned on CPU: mean-pooled,
  L2-normalised sentence vectors, a linear head, class-balanced cross-entropy; the token table
  and the lower layers stay frozen and at most ``max_train`` reviews (a stratified sample) are
  used per fit, which bounds a fit to minutes on two cores.

Both take texts and label indices in ``fit`` and give (n, 3) probabilities in ``predict_proba``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from ml.progress import Progress
from ml.reviews.labels import LABELS
from ml.tagging import encoder as enc
from ml.tagging.defaults import DEFAULT_ENCODER

log = logging.getLogger(__name__)


class TfidfSentiment:
    """TF-IDF (1-2 grams, sublinear tf) + logistic regression with balanced class weights."""

    name: ClassVar[str] = "tfidf_logreg"

    def __init__(self, C: float = 4.0, min_df: int = 2):
        self.C = C
        self.min_df = min_df

    def get_params(self) -> dict[str, Any]:
        return {"C": self.C, "min_df": self.min_df}

    def fit(self, texts: Sequence[str], y: np.ndarray) -> TfidfSentiment:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        vec = TfidfVectorizer(ngram_range=(1, 2), min_df=min(self.min_df, max(1, len(texts))), sublinear_tf=True)
        clf = LogisticRegression(C=self.C, class_weight="balanced", max_iter=2000)
        self.pipeline_ = make_pipeline(vec, clf).fit(list(texts), np.asarray(y))
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        proba = np.zeros((len(texts), len(LABELS)))
        if len(texts):
            proba[:, self.pipeline_.classes_] = self.pipeline_.predict_proba(list(texts))
        return proba


class MiniLMSentiment:
    """MiniLM fine-tuned as a 3-class review classifier (see the module docstring)."""

    name: ClassVar[str] = "minilm"

    def __init__(
        self,
        model_name: str = DEFAULT_ENCODER,
        epochs: int = 2,
        batch_size: int = 32,
        learning_rate: float = 5e-5,
        head_learning_rate: float = 3e-3,
        train_layers: int = 2,
        max_length: int = 48,
        max_train: int = 4000,
        threads: int | None = None,
        seed: int = 0,
    ):
        self.model_name = model_name
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.head_learning_rate = head_learning_rate
        self.train_layers = train_layers
        self.max_length = max_length
        self.max_train = max_train
        self.threads = threads
        self.seed = seed

    def get_params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.endswith("_")}

    def fit(self, texts: Sequence[str], y: np.ndarray) -> MiniLMSentiment:
        import torch

        enc.set_threads(self.threads)
        torch.manual_seed(self.seed)
        texts, y = _sample(list(texts), np.asarray(y, dtype=np.int64), self.max_train, self.seed)
        self.tokenizer_, self.encoder_ = enc.load(self.model_name)
        self.head_ = torch.nn.Linear(int(self.encoder_.config.hidden_size), len(LABELS))
        trainable = enc.trainable_parameters(self.encoder_, True, self.train_layers)
        optimiser = torch.optim.AdamW(
            [
                {"params": trainable, "lr": self.learning_rate},
                {"params": self.head_.parameters(), "lr": self.head_learning_rate},
            ],
            weight_decay=0.01,
        )
        counts = np.bincount(y, minlength=len(LABELS)).astype(np.float64)
        weight = torch.tensor(len(y) / (len(LABELS) * np.maximum(counts, 1.0)), dtype=torch.float32)
        target = torch.from_numpy(y)
        generator = torch.Generator().manual_seed(self.seed)
        steps = -(-len(texts) // self.batch_size)
        t0 = time.perf_counter()
        self.encoder_.train()
        with Progress(steps * self.epochs, "fine-tune the review model", unit="batch", every=30.0) as progress:
            for epoch in range(self.epochs):
                order = torch.randperm(len(texts), generator=generator).tolist()
                for start in range(0, len(texts), self.batch_size):
                    idx = order[start : start + self.batch_size]
                    logits = self._logits([texts[i] for i in idx])
                    loss = torch.nn.functional.cross_entropy(logits, target[idx], weight=weight)
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
                    progress.update(1, f"epoch {epoch + 1}/{self.epochs}, loss {float(loss.detach()):.4f}")
        self.encoder_.eval()
        self.train_seconds_ = time.perf_counter() - t0
        return self

    def _logits(self, texts: list[str]) -> Any:
        return self.head_(enc.sentence_vectors(self.tokenizer_, self.encoder_, texts, self.max_length))

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        X = enc.embed(self.tokenizer_, self.encoder_, list(texts), 64, self.max_length)
        with torch.no_grad():
            logits = self.head_(torch.from_numpy(X))
            return torch.softmax(logits, dim=-1).numpy().astype(np.float64)


MODELS: dict[str, type[TfidfSentiment] | type[MiniLMSentiment]] = {
    TfidfSentiment.name: TfidfSentiment,
    MiniLMSentiment.name: MiniLMSentiment,
}


def make_model(name: str, **params: Any) -> TfidfSentiment | MiniLMSentiment:
    """A review model by name with hyper-parameters (unknown names raise naming the known ones)."""
    if name not in MODELS:
        raise ValueError(f"unknown review model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name](**params)


def _sample(texts: list[str], y: np.ndarray, cap: int, seed: int) -> tuple[list[str], np.ndarray]:
    """At most ``cap`` rows, each label keeping its share (all rows when there are fewer)."""
    if len(texts) <= cap:
        return texts, y
    rng = np.random.default_rng(seed)
    keep = np.concatenate(
        [rng.permutation(np.flatnonzero(y == c))[: max(1, round(cap * np.mean(y == c)))] for c in np.unique(y)]
    )
    keep.sort()
    log.info("review model: fine-tuning on a stratified sample of %d of %d reviews", len(keep), len(texts))
    return [texts[i] for i in keep], y[keep]
