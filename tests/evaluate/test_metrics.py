import math

import numpy as np
import pytest

from ml.evaluate import METRICS, EvalContext, evaluate

pytestmark = pytest.mark.unit

REC = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
REL = [{2, 4, 9}, {5}]


def test_hand_computed_accuracy_metrics():
    assert METRICS["precision"](REC, REL, 4, None) == pytest.approx((2 / 4 + 1 / 4) / 2)
    assert METRICS["recall"](REC, REL, 4, None) == pytest.approx((2 / 3 + 1) / 2)
    assert METRICS["hit_rate"](REC, REL, 4, None) == 1.0
    assert METRICS["mrr"](REC, REL, 4, None) == pytest.approx((1 / 2 + 1) / 2)
    dcg0 = 1 / math.log2(3) + 1 / math.log2(5)
    idcg0 = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert METRICS["ndcg"](REC, REL, 4, None) == pytest.approx((dcg0 / idcg0 + 1.0) / 2)
    ap0 = (1 / 2 + 2 / 4) / 3
    assert METRICS["map"](REC, REL, 4, None) == pytest.approx((ap0 + 1.0) / 2)


def test_map_conventions_differ_only_in_the_normaliser():
    rec = np.array([[0, 1, 2]])
    rel = [{0, 2, 7, 8, 9}]  # 5 relevant, 2 of them hit at ranks 1 and 3
    precisions = 1 / 1 + 2 / 3
    assert METRICS["map"](rec, rel, 3, None) == pytest.approx(precisions / 3)  # min(|rel|, k)
    assert METRICS["map_rel"](rec, rel, 3, None) == pytest.approx(precisions / 5)  # |rel| (MS Recommenders)


def test_ndcg_matches_the_ms_recommenders_natural_log_formula():
    # their DCG uses 1/ln(1 + rank); the base cancels in DCG/IDCG
    rec = np.array([[3, 1, 4, 0, 2]])
    rel = [{1, 2, 5}]
    dcg = 1 / math.log1p(2) + 1 / math.log1p(5)
    idcg = sum(1 / math.log1p(r) for r in range(1, 4))
    assert METRICS["ndcg"](rec, rel, 5, None) == pytest.approx(dcg / idcg)


def test_limits_perfect_and_empty():
    perfect = np.array([[0, 1, 2]])
    assert METRICS["ndcg"](perfect, [{0, 1, 2}], 3, None) == pytest.approx(1.0)
    assert METRICS["precision"](perfect, [{0, 1, 2}], 3, None) == 1.0
    assert METRICS["map"](perfect, [{0, 1, 2}], 3, None) == pytest.approx(1.0)
    none = np.array([[3, 4, 5]])
    for name in ("precision", "recall", "ndcg", "map", "map_rel", "hit_rate", "mrr"):
        assert METRICS[name](none, [{0}], 3, None) == 0.0


def test_accuracy_metrics_stay_in_unit_interval_on_random_lists():
    rng = np.random.default_rng(3)
    rec = np.array([rng.permutation(50)[:10] for _ in range(40)])
    rel = [set(rng.choice(50, size=rng.integers(1, 15), replace=False).tolist()) for _ in range(40)]
    for name in ("precision", "recall", "ndcg", "map", "map_rel", "hit_rate", "mrr"):
        v = METRICS[name](rec, rel, 10, None)
        assert 0.0 <= v <= 1.0, name


def test_users_without_relevant_items_are_skipped_and_empty_slots_never_hit():
    rec = np.array([[1, -1, -1], [7, 8, 9]])
    assert METRICS["precision"](rec, [{1}, set()], 3, None) == pytest.approx(1 / 3)
    assert METRICS["hit_rate"](np.array([[-1, -1]]), [{0}], 2, None) == 0.0


def test_unrankable_relevant_items_count_in_the_denominators():
    # item 99 is beyond the catalogue (unseen in training): it can never be hit but is relevant
    rec = np.array([[0, 1]])
    assert METRICS["recall"](rec, [{0, 99}], 2, None) == pytest.approx(0.5)
    assert METRICS["ndcg"](rec, [{0, 99}], 2, None) == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_beyond_accuracy_metrics():
    ctx = EvalContext(n_items=10, item_popularity=np.full(10, 0.25), item_vectors=np.eye(10))
    assert METRICS["coverage"](REC, REL, 4, ctx) == pytest.approx(0.8)
    assert METRICS["novelty"](REC, REL, 4, ctx) == pytest.approx(2.0)
    assert METRICS["diversity"](REC, REL, 4, ctx) == pytest.approx(1.0)
    assert METRICS["personalisation"](REC, REL, 4, ctx) == pytest.approx(1.0)
    same = np.array([[1, 2], [1, 2]])
    assert METRICS["personalisation"](same, [set(), set()], 2, ctx) == pytest.approx(0.0)
    half = np.array([[1, 2], [1, 3]])
    assert METRICS["personalisation"](half, [set(), set()], 2, ctx) == pytest.approx(0.5)


def test_diversity_and_personalisation_match_brute_force():
    rng = np.random.default_rng(0)
    V = rng.normal(size=(30, 4))
    rec = np.array([rng.permutation(30)[:5] for _ in range(12)])
    ctx = EvalContext(n_items=30, item_vectors=V)
    Vn = V / np.linalg.norm(V, axis=1, keepdims=True)
    brute_div = np.mean([1 - (Vn[r] @ Vn[r].T)[~np.eye(5, dtype=bool)].mean() for r in rec])
    assert METRICS["diversity"](rec, [set()] * 12, 5, ctx) == pytest.approx(brute_div)
    sets = [set(r.tolist()) for r in rec]
    sims = [len(a & b) / 5 for i, a in enumerate(sets) for j, b in enumerate(sets) if i != j]
    assert METRICS["personalisation"](rec, [set()] * 12, 5, ctx) == pytest.approx(1 - np.mean(sims))


def test_metrics_need_their_context():
    with pytest.raises(ValueError, match="coverage"):
        METRICS["coverage"](REC, REL, 4, None)
    with pytest.raises(ValueError, match="novelty"):
        METRICS["novelty"](REC, REL, 4, EvalContext(n_items=10))
    with pytest.raises(ValueError, match="n_items"):
        EvalContext(n_items=0)
    with pytest.raises(ValueError, match="item_popularity"):
        EvalContext(n_items=3, item_popularity=np.ones(2))
    with pytest.raises(ValueError, match="relevant sets"):
        METRICS["precision"](REC, [set()], 4, None)


def test_evaluate_names_metrics_at_k():
    out = evaluate(REC, REL, 4, EvalContext(n_items=10))
    assert set(out) >= {"ndcg@4", "precision@4", "coverage@4", "map_rel@4"}
