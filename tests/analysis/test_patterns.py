"""Behaviour patterns: k-means segments recover planted groups, association rules and the Markov
chain reproduce hand-computed numbers, and the jobs write their tables idempotently."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.analysis.markov import MarkovNextCategory
from ml.analysis.rules import CategoryAssociationRules
from ml.analysis.segments import SEGMENT_FEATURES, UserSegmenter, segment_users

pytestmark = pytest.mark.unit


def _planted_users(n_per: int = 60, seed: int = 0) -> pd.DataFrame:
    """Three behaviour groups: lapsed browsers, regular buyers, heavy spenders."""
    rng = np.random.default_rng(seed)
    centres = [
        dict(
            recency_days=60,
            n_sessions=2,
            n_events=8,
            n_purchases=0,
            monetary=0,
            n_distinct_categories=1,
            avg_events_per_session=4,
        ),
        dict(
            recency_days=5,
            n_sessions=8,
            n_events=60,
            n_purchases=3,
            monetary=150,
            n_distinct_categories=3,
            avg_events_per_session=7,
        ),
        dict(
            recency_days=1,
            n_sessions=25,
            n_events=400,
            n_purchases=30,
            monetary=4000,
            n_distinct_categories=8,
            avg_events_per_session=16,
        ),
    ]
    rows = []
    for g, c in enumerate(centres):
        for i in range(n_per):
            rows.append(
                {
                    "user_id": f"u{g}-{i:03d}",
                    "group": g,
                    "has_events": True,
                    **{k: v * float(rng.lognormal(0, 0.15)) for k, v in c.items()},
                }
            )
    return pd.DataFrame(rows)


def test_segmenter_recovers_planted_groups_and_reports_silhouette():
    users = _planted_users()
    res = segment_users(users, UserSegmenter(k_values=(2, 3, 4, 5), random_state=0))
    assert res.k == 3
    assert res.silhouette == pytest.approx(max(res.silhouette_by_k.values())) and res.silhouette > 0.5
    merged = res.table.merge(users[["user_id", "group"]], on="user_id")
    purity = merged.groupby("segment")["group"].agg(lambda g: g.value_counts().iloc[0] / len(g))
    assert (purity == 1.0).all()
    assert sorted(res.sizes.values()) == [60, 60, 60]
    assert res.table["segment_label"].str.contains("high|low").all()


def test_segmenter_is_deterministic_and_needs_enough_users():
    X = _planted_users()[list(SEGMENT_FEATURES)]
    a = UserSegmenter(k_values=(3,), random_state=1).fit(X)
    b = UserSegmenter(k_values=(3,), random_state=1).fit(X)
    assert (a.labels_ == b.labels_).all() and (a.predict(X) == a.labels_).all()
    assert a.get_params()["k_values"] == (3,) and not hasattr(UserSegmenter(), "labels_")
    with pytest.raises(ValueError, match="more users than the smallest k"):
        UserSegmenter(k_values=(5,)).fit(X.head(4))


def test_association_rules_match_hand_counts():
    # 10 baskets: A in 6, B in 5, A&B in 4, C in 2 (never with A)
    baskets = [(f"b{i}", c) for i in range(4) for c in ("A", "B")]
    baskets += [("b4", "A"), ("b5", "A"), ("b6", "B"), ("b7", "C"), ("b8", "C"), ("b9", "D")]
    df = pd.DataFrame(baskets, columns=["session_key", "category_path"])
    df = pd.concat([df, df.head(1)])  # a repeated row changes nothing
    model = CategoryAssociationRules(min_support=0.1, min_confidence=0.1, min_count=1).fit(df)
    rules = model.rules_.set_index(["antecedent", "consequent"])
    ab, ba = rules.loc[("A", "B")], rules.loc[("B", "A")]
    assert model.n_baskets_ == 10
    assert ab["support"] == pytest.approx(0.4) and ab["confidence"] == pytest.approx(4 / 6)
    assert ab["lift"] == pytest.approx((4 / 6) / 0.5) and ba["confidence"] == pytest.approx(4 / 5)
    assert ab["n_baskets"] == 4 and len(rules) == 2  # C and D never co-occur with anything
    strict = CategoryAssociationRules(min_support=0.1, min_confidence=0.7, min_count=1).fit(df)
    assert strict.rules_[["antecedent", "consequent"]].values.tolist() == [["B", "A"]]


def test_markov_chain_probabilities_are_normalised_counts():
    t = pd.DataFrame(
        {"from_category": ["A", "A", "B", "A"], "to_category": ["B", "A", "A", "B"], "n_transitions": [3, 1, 2, 1]}
    )
    m = MarkovNextCategory().fit(t)
    assert m.transition_matrix_.sum(axis=1) == pytest.approx([1.0, 1.0])
    assert m.predict_proba("A").to_dict() == pytest.approx({"B": 0.8, "A": 0.2})
    assert m.top_next("B") == ["A"] and m.predict_proba("Z").empty
    frame = m.to_frame()
    assert frame["n"].sum() == 7 and set(frame.columns) == {"from_category", "to_category", "n", "probability"}
    smooth = MarkovNextCategory(alpha=1.0).fit(t)
    assert smooth.predict_proba("B").to_dict() == pytest.approx({"A": 0.75, "B": 0.25})
    with pytest.raises(ValueError, match="alpha"):
        MarkovNextCategory(alpha=-1).fit(t)


def test_jobs_write_their_tables_and_rerun_gives_the_same_rows(warehouse):
    from ml.analysis.jobs import run_category_rules, run_category_transitions, run_segments

    users = _planted_users(n_per=20)
    baskets = pd.DataFrame(
        [(f"u{i}", f"u{i}#1", c) for i in range(30) for c in (["A", "B"] if i % 3 else ["C"])],
        columns=["user_id", "session_key", "category_path"],
    )
    steps = pd.DataFrame({"from_category": ["A", "B"], "to_category": ["B", "A"], "n_transitions": [5, 2]})
    with warehouse.connect() as con:
        con.execute("create schema if not exists marts")
        con.register("u", users.drop(columns="group"))
        con.execute("create table marts.user_features as select * from u")
        con.register("b", baskets)
        con.execute("create table marts.session_categories as select * from b")
        con.register("s", steps)
        con.execute("create table marts.category_transition_counts as select * from s")
        con.execute("create table marts.interaction_events as select timestamp '2026-10-31 12:00' as event_at")

    seg = run_segments(warehouse, run_id="r1", k_values=(2, 3, 4))
    rules = run_category_rules(warehouse, run_id="r1", min_support=0.1)
    trans = run_category_transitions(warehouse, run_id="r1")
    assert seg["k"] == 3 and seg["users"] == 60 and 0 < seg["silhouette"] <= 1
    assert rules["rules"] == 2 and rules["baskets"] == 30 and trans == {"categories": 2, "transitions": 2, "steps": 7}

    def tables():
        return {
            t: warehouse.query(f"select * from ml.{t} order by all")
            for t in ("user_segments", "category_rules", "category_transitions")
        }

    first = tables()
    assert set(first["user_segments"]["segment"]) == {0, 1, 2}
    assert first["category_transitions"]["probability"].tolist() == pytest.approx([1.0, 1.0])
    run_segments(warehouse, run_id="r1", k_values=(2, 3, 4))
    run_category_rules(warehouse, run_id="r1", min_support=0.1)
    run_category_transitions(warehouse, run_id="r1")
    for name, df in tables().items():
        pd.testing.assert_frame_equal(df, first[name], obj=name)
