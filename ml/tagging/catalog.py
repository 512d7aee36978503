"""Tagging the catalogue with a registered tagger: labels where merchandisers gave them, the
model's tags elsewhere, and zero-shot tags for vocabulary tags the model never learned."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml.tagging.base import Tagger
from ml.tagging.defaults import DEFAULT_ENCODER
from ml.tagging.text import ITEM_ID, item_texts
from ml.tagging.vocabulary import COLUMNS as VOCABULARY_COLUMNS
from ml.tagging.vocabulary import TAG, Vocabulary

SOURCES = ("label", "model", "zero_shot")


@dataclass
class TaggerArtifact:
    """What the registry stores for a tagger version: the fitted tagger and how to zero-shot."""

    tagger: Tagger
    vocabulary_version: str
    zero_shot_threshold: float | None = 0.35  # None: this version assigns no zero-shot tags
    zero_shot_model: str = DEFAULT_ENCODER
    training: dict[str, Any] = field(default_factory=dict)

    def zero_shot_tags(self, vocabulary: Vocabulary) -> list[str]:
        """Item tags of the (current) vocabulary that the tagger did not learn."""
        if self.zero_shot_threshold is None:
            return []
        learned = {str(t) for t in self.tagger.tags_}
        return [t for t in vocabulary.taggable() if t not in learned]


def tag_items(
    items: pd.DataFrame,
    artifact: TaggerArtifact,
    vocabulary: Vocabulary,
    labels: pd.DataFrame | None = None,
    batch_size: int = 256,
    threads: int | None = None,
) -> pd.DataFrame:
    """Rows (item_id, tag, score, source) for every item of ``items`` (item_id, title, …).

    The catalogue is processed ``batch_size`` items at a time (bounded memory). Labelled items
    carry their labels (score 1) instead of model tags; zero-shot tags apply to every item.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    texts = item_texts(items)
    ids = items[ITEM_ID].to_numpy()
    tagger = artifact.tagger
    if threads and hasattr(tagger, "threads"):
        tagger.threads = threads
    zs_tags = artifact.zero_shot_tags(vocabulary)
    zero_shot = None
    if zs_tags:
        from ml.tagging.zero_shot import ZeroShotTagger

        threshold = float(artifact.zero_shot_threshold or 0.0)
        zero_shot = ZeroShotTagger(artifact.zero_shot_model, threshold, threads=threads)
        zero_shot.fit(zs_tags, [vocabulary.descriptions.get(t, "") or t for t in zs_tags])
    parts = []
    for start in range(0, len(texts), batch_size):
        chunk: Sequence[str] = texts[start : start + batch_size]
        chunk_ids = ids[start : start + batch_size]
        assigned, scores = tagger.predict_matrix(chunk)
        r, c = np.nonzero(assigned)
        parts.append(
            pd.DataFrame({ITEM_ID: chunk_ids[r], TAG: tagger.tags_[c], "score": scores[r, c], "source": "model"})
        )
        if zero_shot is not None:
            zs = zero_shot.predict_scores(chunk)
            r, c = np.nonzero(zs >= zero_shot.threshold)
            parts.append(
                pd.DataFrame({ITEM_ID: chunk_ids[r], TAG: zero_shot.tags_[c], "score": zs[r, c], "source": "zero_shot"})
            )
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[ITEM_ID, TAG, "score", "source"])
    if labels is not None and len(labels):
        lab = labels[labels[ITEM_ID].isin(set(ids))][[ITEM_ID, TAG]].drop_duplicates()
        labelled = set(lab[ITEM_ID])
        out = out[~(out[ITEM_ID].isin(labelled) & (out["source"] == "model"))]
        out = out[~out.set_index([ITEM_ID, TAG]).index.isin(lab.set_index([ITEM_ID, TAG]).index)]
        out = pd.concat([out, lab.assign(score=1.0, source="label")], ignore_index=True)
    out["score"] = out["score"].astype(np.float64)
    out[TAG] = out[TAG].astype(str)
    return out.sort_values([ITEM_ID, TAG]).reset_index(drop=True)


def item_fingerprints(
    item_ids: pd.Series, texts: Sequence[str], labels: pd.DataFrame | None, tagger_version: str, vocabulary: Vocabulary
) -> pd.Series:
    """item_id -> a hash of everything :func:`tag_items` reads for the item: its tagger text
    (``texts``, in the order of ``item_ids``: :func:`ml.tagging.text.item_texts`), its labels,
    the tagger version and the vocabulary (the zero-shot tags read its descriptions). An item
    whose fingerprint is unchanged gets the same tags again."""
    vocab = vocabulary.frame[[c for c in VOCABULARY_COLUMNS if c in vocabulary.frame]].sort_values(TAG)
    basis = f"{tagger_version}\x1f{hashlib.sha1(vocab.to_csv(index=False).encode()).hexdigest()}"
    per_item: dict[str, str] = {}
    if labels is not None and len(labels):
        per_item = labels.groupby(ITEM_ID)[TAG].agg(lambda s: "|".join(sorted(set(map(str, s))))).to_dict()
    ids = item_ids.astype(str).tolist()
    digests = [
        hashlib.sha1(f"{basis}\x1f{text}\x1f{per_item.get(i, '')}".encode()).hexdigest()[:20]
        for i, text in zip(ids, texts, strict=True)
    ]
    return pd.Series(digests, index=pd.Index(ids, name=ITEM_ID), name="fingerprint")
