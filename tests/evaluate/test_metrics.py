import math

import numpy as np
import pytest

from ml.evaluate import METRICS, EvalContext, evaluate, leave_last_out, random_split, temporal_split

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


def test_limits_perfect_and_empty():
    perfect = np.array([[0, 1, 2]])
    assert METRICS["ndcg"](perfect, [{0, 1, 2}], 3, None) == pytest.approx(1.0)
    assert METRICS["precision"](perfect, [{0, 1, 2}], 3, None) == 1.0
    none = np.array([[3, 4, 5]])
    for name in ("precision", "recall", "ndcg", "map", "hit_rate", "mrr"):
        assert METRICS[name](none, [{0}], 3, None) == 0.0


def test_beyond_accuracy_metrics():
    ctx = EvalContext(n_items=10, item_popularity=np.full(10, 0.25), item_vectors=np.eye(10))
    assert METRICS["coverage"](REC, REL, 4, ctx) == pytest.approx(0.8)
    assert METRICS["novelty"](REC, REL, 4, ctx) == pytest.approx(2.0)
    assert METRICS["diversity"](REC, REL, 4, ctx) == pytest.approx(1.0)
    assert METRICS["personalisation"](REC, REL, 4, ctx) == pytest.approx(1.0)
    same = np.array([[1, 2], [1, 2]])
    assert METRICS["personalisation"](same, [set(), set()], 2, ctx) == pytest.approx(0.0)


def test_evaluate_names_metrics_at_k():
    out = evaluate(REC, REL, 4, EvalContext(n_items=10))
    assert set(out) >= {"ndcg@4", "precision@4", "coverage@4"}


def test_splits():
    import pandas as pd

    df = pd.DataFrame(
        {
            "user_id": ["a"] * 4 + ["b"] * 2,
            "item_id": [1, 2, 3, 4, 1, 2],
            "event_at": pd.to_datetime(
                ["2026-01-01", "2026-01-02", "2026-01-09", "2026-01-10", "2026-01-03", "2026-01-10"]
            ),
        }
    )
    tr, te, cutoff = temporal_split(df, holdout_days=2)
    assert (te["event_at"] > cutoff).all() and (tr["event_at"] <= cutoff).all() and len(tr) + len(te) == 6
    tr, te = random_split(df, ratio=0.75, seed=1)
    assert len(tr) + len(te) == 6 and set(tr["user_id"]) == {"a", "b"}
    tr2, _te2 = random_split(df, ratio=0.75, seed=1)
    assert tr.equals(tr2)
    tr, te = leave_last_out(df)
    assert sorted(te["item_id"]) == [2, 4]
