"""A fine-tuned transformer tagger: all-MiniLM-L6-v2 with a multi-label head (PyTorch).

The item text goes through the encoder, token vectors are mean-pooled and L2-normalised (the
sentence-embedding recipe the model was trained with), and a linear layer gives one logit per
tag. Training (encoder included) minimises a cross-entropy per exclusive kind (every item has
exactly one category, one style, one brand tier: a softmax over that kind's tags) plus binary
cross-entropy over tags of non-exclusive kinds (several or none per item).

With ``label_init`` the head starts as a zero-shot classifier: each tag's weight row is the
embedding of its vocabulary description (times ``init_scale``) and its bias centres the
initial logit on the tag's training prevalence. Rare tags therefore start from their meaning
instead of from noise, which is what lets a few epochs on a few thousand items generalise to
wordings the training set never showed.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ml.progress import Progress
from ml.tagging import encoder as enc
from ml.tagging.base import Tagger
from ml.tagging.defaults import DEFAULT_ENCODER
from ml.tagging.vocabulary import Vocabulary

log = logging.getLogger(__name__)


class TransformerTagger(Tagger):
    """Fine-tunes a sentence encoder as a multi-label tag classifier on CPU.

    Hyper-parameters: ``max_length`` (tokens per item), ``epochs``, ``batch_size``,
    ``learning_rate`` (encoder) and ``head_learning_rate`` (AdamW, linear warm-up for
    ``warmup_share`` of the steps then linear decay), ``weight_decay``, ``label_init`` and
    ``init_scale`` (see the module docstring), ``class_weight`` (``"balanced"``: each tag of an
    exclusive kind weighs n / (n_tags_of_kind * count) in its cross-entropy and each other tag's
    positives weigh negatives / positives, so rare tags count as much as common ones, as with
    scikit-learn's ``class_weight="balanced"``; ``None``: every item weighs the same),
    ``freeze_embeddings`` (keep the token-embedding
    table fixed: half the weights, a faster step, less over-fitting of rare words),
    ``train_layers`` (fine-tune only the top N of the 6 transformer layers, no backward pass
    below them; ``None`` = all), ``threads`` (torch intra-op threads, ``None`` keeps
    torch's default), ``inference_batch_size`` (items per no-grad forward pass; bounds memory),
    ``seed``. Learned: ``tokenizer_``, ``encoder_``, ``head_`` plus the base attributes.
    """

    name = "transformer"

    def __init__(
        self,
        model_name: str = DEFAULT_ENCODER,
        max_length: int = 64,
        epochs: int = 3,
        batch_size: int = 16,
        learning_rate: float = 1e-4,
        head_learning_rate: float = 3e-3,
        weight_decay: float = 0.01,
        warmup_share: float = 0.1,
        label_init: bool = True,
        init_scale: float = 20.0,
        class_weight: str | None = None,
        freeze_embeddings: bool = True,
        train_layers: int | None = 3,
        threads: int | None = None,
        inference_batch_size: int = 64,
        seed: int = 0,
    ):
        self.model_name = model_name
        self.max_length = max_length
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.head_learning_rate = head_learning_rate
        self.weight_decay = weight_decay
        self.warmup_share = warmup_share
        self.label_init = label_init
        self.init_scale = init_scale
        if class_weight not in (None, "balanced"):
            raise ValueError(f"class_weight must be None or 'balanced', got {class_weight!r}")
        self.class_weight = class_weight
        self.freeze_embeddings = freeze_embeddings
        self.train_layers = train_layers
        self.threads = threads
        self.inference_batch_size = inference_batch_size
        self.seed = seed

    # ---- training --------------------------------------------------------------------------
    def _fit(self, texts: list[str], Y: np.ndarray, vocabulary: Vocabulary | None) -> None:
        import torch

        enc.set_threads(self.threads)
        torch.manual_seed(self.seed)
        self.tokenizer_, self.encoder_ = enc.load(self.model_name)
        dim = int(self.encoder_.config.hidden_size)
        self.head_ = torch.nn.Linear(dim, Y.shape[1])
        self._init_head(texts, Y, vocabulary)
        target = torch.from_numpy(Y.astype(np.float32))
        n = len(texts)
        steps_per_epoch = math.ceil(n / self.batch_size)
        total = max(1, steps_per_epoch * self.epochs)
        warmup = int(total * self.warmup_share)
        trainable = enc.trainable_parameters(self.encoder_, self.freeze_embeddings, self.train_layers)
        optimiser = torch.optim.AdamW(
            [
                {"params": trainable, "lr": self.learning_rate},
                {"params": self.head_.parameters(), "lr": self.head_learning_rate},
            ],
            weight_decay=self.weight_decay,
        )

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / max(1, warmup)
            return max(0.0, (total - step) / max(1, total - warmup))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, schedule)
        groups, free = self._groups()
        group_targets = [torch.from_numpy(np.argmax(Y[:, cols], axis=1)) for cols in groups]
        group_weights, pos_weight = self._class_weights(Y, groups, free)
        generator = torch.Generator().manual_seed(self.seed)
        self.encoder_.train()
        self.head_.train()
        losses: list[float] = []
        t0 = time.perf_counter()
        with Progress(steps_per_epoch * self.epochs, "fine-tune the tagger", unit="batch", every=30.0) as progress:
            for epoch in range(self.epochs):
                order = torch.randperm(n, generator=generator).tolist()
                for start in range(0, n, self.batch_size):
                    idx = order[start : start + self.batch_size]
                    logits = self._logits([texts[i] for i in idx])
                    loss = self._loss(logits, idx, groups, group_targets, free, target, group_weights, pos_weight)
                    optimiser.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                    optimiser.step()
                    scheduler.step()
                    losses.append(float(loss.detach()))
                    progress.update(1, f"epoch {epoch + 1}/{self.epochs}, loss {losses[-1]:.4f}")
                seconds = time.perf_counter() - t0
                log.info(
                    "epoch %d/%d: loss %.4f, %.1f items/s",
                    epoch + 1,
                    self.epochs,
                    float(np.mean(losses[-steps_per_epoch:])),
                    n * (epoch + 1) / max(seconds, 1e-9),
                )
        self.train_seconds_ = time.perf_counter() - t0
        self.train_loss_ = float(np.mean(losses[-steps_per_epoch:])) if losses else float("nan")
        self.encoder_.eval()
        self.head_.eval()

    def _init_head(self, texts: list[str], Y: np.ndarray, vocabulary: Vocabulary | None) -> None:
        """The head starts at the tags' description embeddings (``label_init``), centred on the
        texts, with the labels' prior log-odds as bias; or at zero weights with that bias."""
        import torch

        prior = np.clip(Y.mean(axis=0), 1e-4, 1 - 1e-4)
        with torch.no_grad():
            if self.label_init:
                descriptions = [self._describe(str(t), vocabulary) for t in self.tags_]
                W = enc.embed(self.tokenizer_, self.encoder_, descriptions, self.inference_batch_size, self.max_length)
                sample = texts[:: max(1, len(texts) // 256)]  # a spread-out sample is enough to centre
                X0 = enc.embed(self.tokenizer_, self.encoder_, sample, self.inference_batch_size, self.max_length)
                mean_cos = (X0 @ W.T).mean(axis=0)
                self.head_.weight.copy_(torch.from_numpy(W * self.init_scale))
                bias = np.log(prior / (1 - prior)) - self.init_scale * mean_cos
            else:
                bias = np.log(prior / (1 - prior))
            self.head_.bias.copy_(torch.from_numpy(bias.astype(np.float32)))

    def _groups(self) -> tuple[list[np.ndarray], np.ndarray]:
        """Column groups of the exclusive kinds (one softmax each) and the remaining columns."""
        kinds = np.asarray(self.kinds_)
        groups = [np.flatnonzero(kinds == k) for k in self.exclusive_kinds_]
        free = np.flatnonzero(~np.isin(kinds, list(self.exclusive_kinds_)))
        return groups, free

    def _class_weights(
        self, Y: np.ndarray, groups: list[np.ndarray], free: np.ndarray
    ) -> tuple[list[Any | None], Any | None]:
        """Per-tag weights of each exclusive kind's cross-entropy and the positive weight of the
        other tags' binary cross-entropy (``None`` each without ``class_weight``)."""
        import torch

        if self.class_weight is None:
            return [None] * len(groups), None
        n = max(Y.shape[0], 1)
        weights: list[Any | None] = []
        for cols in groups:
            counts = Y[:, cols].sum(axis=0).astype(np.float64)
            w = n / (len(cols) * np.maximum(counts, 1.0))
            weights.append(torch.from_numpy(w.astype(np.float32)))
        pos_weight = None
        if len(free):
            pos = Y[:, free].sum(axis=0).astype(np.float64)
            pos_weight = torch.from_numpy(((n - pos) / np.maximum(pos, 1.0)).clip(1.0, None).astype(np.float32))
        return weights, pos_weight

    @staticmethod
    def _loss(
        logits: Any,
        idx: list[int],
        groups: list[np.ndarray],
        group_targets: list[Any],
        free: np.ndarray,
        target: Any,
        group_weights: Sequence[Any | None] | None = None,
        pos_weight: Any | None = None,
    ) -> Any:
        """Cross-entropy over each exclusive kind (an item has exactly one of its tags) plus
        binary cross-entropy over the other tags, averaged over the terms; optional class
        weights per exclusive kind and positive weights of the other tags."""
        import torch

        weights = list(group_weights) if group_weights is not None else [None] * len(groups)
        terms = [
            torch.nn.functional.cross_entropy(logits[:, torch.from_numpy(cols)], t[idx], weight=w)
            for cols, t, w in zip(groups, group_targets, weights, strict=True)
        ]
        if len(free):
            cols = torch.from_numpy(free)
            terms.append(
                torch.nn.functional.binary_cross_entropy_with_logits(
                    logits[:, cols], target[idx][:, cols], pos_weight=pos_weight
                )
            )
        return torch.stack(terms).mean()

    def _probabilities(self, logits: Any) -> Any:
        """Softmax within each exclusive kind, sigmoid for the other tags (n, n_tags)."""
        import torch

        groups, free = self._groups()
        out = torch.empty_like(logits)
        for cols in groups:
            c = torch.from_numpy(cols)
            out[:, c] = torch.softmax(logits[:, c], dim=1)
        if len(free):
            c = torch.from_numpy(free)
            out[:, c] = torch.sigmoid(logits[:, c])
        return out

    @staticmethod
    def _describe(tag: str, vocabulary: Vocabulary | None) -> str:
        """The text a tag's head row starts from: its vocabulary description, else its id."""
        desc = vocabulary.descriptions.get(tag, "") if vocabulary is not None else ""
        return desc or tag.split(":", 1)[-1].replace("_", " ")

    def _logits(self, texts: list[str]) -> Any:
        return self.head_(enc.sentence_vectors(self.tokenizer_, self.encoder_, texts, self.max_length))

    # ---- inference -------------------------------------------------------------------------
    def predict_scores(self, texts: Sequence[str]) -> np.ndarray:
        """Scores (n, n_tags), computed ``inference_batch_size`` items at a time: probabilities
        within each exclusive kind (they sum to 1), sigmoid for the other tags."""
        import torch

        enc.set_threads(self.threads)
        out = []
        with torch.no_grad():
            for start in range(0, len(texts), self.inference_batch_size):
                logits = self._logits(list(texts[start : start + self.inference_batch_size]))
                out.append(self._probabilities(logits).cpu().numpy().astype(np.float32))
        return np.vstack(out) if out else np.zeros((0, len(self.tags_)), dtype=np.float32)

    # ---- pickling (registry artifacts) -------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if "encoder_" in state:
            state["encoder_files_"] = enc.pack(state.pop("tokenizer_"), state.pop("encoder_"))
            head = state.pop("head_")
            state["head_state_"] = {k: v.detach().cpu().numpy() for k, v in head.state_dict().items()}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        files = state.pop("encoder_files_", None)
        head_state = state.pop("head_state_", None)
        self.__dict__.update(state)
        if files is not None and head_state is not None:
            import torch

            self.tokenizer_, self.encoder_ = enc.unpack(files)
            self.encoder_.eval()
            weight = torch.from_numpy(head_state["weight"])
            self.head_ = torch.nn.Linear(weight.shape[1], weight.shape[0])
            self.head_.load_state_dict({k: torch.from_numpy(v) for k, v in head_state.items()})
            self.head_.eval()
