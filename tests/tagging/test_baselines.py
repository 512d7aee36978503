"""The scikit-learn baselines and the decoding every tagger shares."""

from __future__ import annotations

import numpy as np
import pytest

from ml.tagging.base import binarize, decode, exclusive_kinds
from ml.tagging.baselines import LogisticRegressionTagger, NaiveBayesTagger
from ml.tagging.train import make_tagger
from tests.tagging.corpus import make_corpus

pytestmark = pytest.mark.unit


def test_exclusive_kinds_are_those_every_item_carries_exactly_once():
    Y, tags = binarize([["cat:a", "style:x"], ["cat:b", "style:x", "style:y"], ["cat:a"]])
    kinds = [t.split(":")[0] for t in tags]
    assert exclusive_kinds(Y, kinds) == ["cat"]


def test_decode_takes_the_argmax_of_exclusive_kinds_and_thresholds_the_rest():
    scores = np.array([[0.2, 0.1, 0.9, 0.4], [0.05, 0.3, 0.2, 0.6]])
    kinds = ["cat", "cat", "use", "use"]
    out = decode(scores, kinds, ["cat"], threshold=0.5)
    assert out.tolist() == [[True, False, True, False], [False, True, False, True]]


@pytest.mark.parametrize("model", [NaiveBayesTagger(), LogisticRegressionTagger()])
def test_baselines_learn_the_corpus_and_assign_one_tag_per_exclusive_kind(model, corpus, vocabulary):
    texts, labels = corpus
    model.fit(texts[:45], labels[:45], vocabulary)
    assert set(model.exclusive_kinds_) == {"category", "style", "brand-tier"}
    assert all(not k.endswith("_") for k in model.get_params())
    predicted = model.predict(texts[45:])
    for tags in predicted:
        kinds = sorted(vocabulary.kind(t) for t in tags)
        assert kinds == ["brand-tier", "category", "style"]
    right = np.mean([len(set(p) & set(t)) / len(t) for p, t in zip(predicted, labels[45:], strict=True)])
    assert right >= 0.8
    scores = model.predict_scores(texts[45:])
    assert scores.shape == (15, len(model.tags_)) and scores.min() >= 0 and scores.max() <= 1


def test_init_only_stores_hyper_parameters_and_make_tagger_knows_every_model():
    m = make_tagger("logistic_regression", C=3.0, ngram_range=[1, 1])
    assert m.get_params()["C"] == 3.0 and m.get_params()["ngram_range"] == (1, 1)
    assert not [k for k in vars(m) if k.endswith("_")]
    with pytest.raises(ValueError, match="unknown tagger"):
        make_tagger("bert-large")


def test_fit_rejects_mismatched_inputs(vocabulary):
    texts, labels = make_corpus(5)
    with pytest.raises(ValueError, match="5 texts but 4 label lists"):
        NaiveBayesTagger().fit(texts, labels[:4], vocabulary)


def test_hyper_parameters_are_chosen_on_training_items_only(corpus, vocabulary):
    from ml.tagging.data import TrainingSet
    from ml.tagging.train import select_params

    texts, labels = corpus
    is_test = np.arange(len(texts)) >= 45
    data = TrainingSet(
        [f"I{i}" for i in range(len(texts))], texts, labels, is_test, sorted({t for ls in labels for t in ls}), []
    )
    grid = [{"alpha": 10.0}, {"alpha": 0.01}]
    best, trials = select_params("naive_bayes", grid, data, vocabulary, valid_share=0.3)
    assert [t["params"] for t in trials] == grid
    assert best == max(trials, key=lambda t: t["validation_macro_f1"])["params"]
    assert best == {"alpha": 0.01}  # heavy smoothing washes the word evidence out
