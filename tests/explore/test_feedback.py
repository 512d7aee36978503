"""Feedback join (in-memory twin of marts.bandit_feedback) and its statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.explore import columns as C
from ml.explore.feedback import FeedbackStats, feedback_from_events
from ml.explore.policies import examination_weights

pytestmark = pytest.mark.unit

T0 = pd.Timestamp("2026-10-01 10:00:00")


def _events(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["event_type", "user_id", "item_id", C.RECOMMENDATION_ID, C.POSITION, "event_at"])


def _logged(rows: list[tuple]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=[C.RECOMMENDATION_ID, C.POSITION, "item_id", C.TAG, C.PROPENSITY])
    return df.assign(
        **{
            C.RUN_ID: "run-1",
            "user_id": "u1",
            C.POLICY: "thompson",
            C.POLICY_VERSION: "thompson-v1",
            C.PROPENSITY_SE: 0.01,
            C.IS_EXPLORATION: False,
            "score": 0.1,
            C.ARM_FEATURES: "[1.0]",
            C.AS_OF: T0,
        }
    )


def test_revenue_goes_to_one_slot_per_purchase_last_touch_or_the_carried_slate():
    """The rows of the mart's dbt unit test (dbt/models/marts/_bandit__models.yml), same answers."""
    h = pd.Timedelta(hours=1)
    ev = _events(
        [
            ("impression", "u1", "i2", "r1", 2, T0),
            ("purchase", "u1", "i2", None, None, T0 + pd.Timedelta(minutes=11)),  # 20.0 x 2
            ("impression", "u2", "i3", "r2", 1, T0),
            ("purchase", "u2", "i3", None, None, T0 + pd.Timedelta(days=5)),  # outside the window
            ("impression", "u4", "i5", "r4", 1, T0 + 23 * h),
            ("impression", "u4", "i5", "r5", 3, T0 + 29 * h),
            ("purchase", "u4", "i5", None, None, T0 + 32 * h),  # last touch: r5
            ("purchase", "u4", "i5", "r4", None, T0 + 33 * h),  # carries r4: r4, not the later r5
        ]
    ).assign(price=[None, 20.0, None, 9.0, None, None, 5.5, 7.0], quantity=[None, 2, None, 1, None, None, None, 1])
    fb = feedback_from_events(_logged([]), ev).set_index(C.FEEDBACK_ID)
    assert fb[C.PURCHASED].to_dict() == {"r1#2": 1, "r2#1": 0, "r4#1": 1, "r5#3": 1}
    assert fb[C.REVENUE].to_dict() == {"r1#2": 40.0, "r2#1": 0.0, "r4#1": 7.0, "r5#3": 5.5}
    assert not fb[C.CLICKED].any()  # purchases are attributed without a click


def test_purchases_without_price_count_but_add_no_revenue():
    ev = _events([("impression", "u1", "i1", "r1", 1, T0), ("purchase", "u1", "i1", None, None, T0)])
    fb = feedback_from_events(_logged([]), ev)
    assert fb[C.PURCHASED].tolist() == [1] and fb[C.REVENUE].tolist() == [0.0]


def test_clicks_and_purchases_join_by_slate_and_slot():
    m = pd.Timedelta(minutes=1)
    ev = _events(
        [
            ("impression", "u1", "i1", "r1", 1, T0),
            ("impression", "u1", "i2", "r1", 2, T0),
            ("click", "u1", "i2", "r1", 2, T0 + m),
            ("purchase", "u1", "i2", None, None, T0 + 10 * m),
            ("impression", "u2", "i3", "r2", 1, T0),
            ("click", "u2", "i3", "r2", 1, T0 + m),
            ("purchase", "u2", "i3", None, None, T0 + pd.Timedelta(days=5)),  # outside the window
            ("click", "u3", "i4", "r3", 4, T0),  # no impression: no row
            ("impression", "u1", "i9", "r1", 3, T0),
            ("purchase", "u1", "i9", "r1", None, T0 + 2 * m),  # carries the slate id
        ]
    )
    logged = _logged([("r1", 1, "i1", "cat:a", 0.5), ("r1", 2, "i2", "cat:b", 0.25), ("r1", 3, "OTHER", "cat:c", 0.2)])
    fb = feedback_from_events(logged, ev).set_index(C.FEEDBACK_ID)
    assert list(fb.index) == ["r1#1", "r1#2", "r1#3", "r2#1"]
    assert fb[C.CLICKED].to_dict() == {"r1#1": 0, "r1#2": 1, "r1#3": 0, "r2#1": 1}
    assert fb[C.PURCHASED].to_dict() == {"r1#1": 0, "r1#2": 1, "r1#3": 1, "r2#1": 0}
    assert fb.loc["r1#2", C.PROPENSITY] == 0.25 and fb.loc["r1#2", C.TAG] == "cat:b"
    # the logged item differs from the impression's: the propensity does not apply
    assert not fb.loc["r1#3", C.HAS_PROPENSITY] and pd.isna(fb.loc["r1#3", C.PROPENSITY])
    assert not fb.loc["r2#1", C.HAS_PROPENSITY]
    assert list(fb.reset_index().columns) == list(C.FEEDBACK_COLUMNS)


def test_statistics_are_position_debiased_and_fill_tags_from_items():
    rng = np.random.default_rng(0)
    n = 200_000
    pos = rng.integers(1, 6, n)
    examine = np.array([1.0, 0.75, 0.55, 0.42, 0.33])[pos - 1]
    clicked = (rng.random(n) < 0.2 * examine).astype(int)
    fb = pd.DataFrame(
        {
            C.POSITION: pos,
            "user_id": "u1",
            "item_id": np.where(rng.random(n) < 0.5, "i1", "i2"),
            C.TAG: None,
            C.CLICKED: clicked,
        }
    )
    e = examination_weights(fb)
    np.testing.assert_allclose(e[:5], [1.0, 0.75, 0.55, 0.42, 0.33], atol=0.04)
    stats = FeedbackStats.from_feedback(fb, {"i1": "cat:a", "i2": "cat:b"})
    exam, clicks = stats.user_tag[("u1", "cat:a")]
    assert clicks / exam == pytest.approx(0.2, abs=0.02)  # the click rate per *examined* impression
    assert stats.user_item[("u1", "i1")][0] == (fb["item_id"] == "i1").sum()
    assert FeedbackStats.from_feedback(pd.DataFrame()).n_rows == 0


def test_base_rate_does_not_depend_on_the_order_of_the_pairs():
    """Contexts pass a set of (user, tag) pairs, which iterates in a different order in every
    process; the base rate must be the same number whatever the order (sums are exact)."""
    values = [1e16, 1.0, -1e16, 3.0, 0.1, 0.2, 0.3]
    stats = FeedbackStats(user_tag={(f"u{i}", "cat:x"): (v, v / 7.0) for i, v in enumerate(values)})
    pairs = list(stats.user_tag)
    forward = stats.rate(pairs, 0.1, smoothing=1.0)
    assert forward == stats.rate(pairs[::-1], 0.1, smoothing=1.0)
    assert forward == stats.rate([pairs[i] for i in (3, 0, 6, 2, 5, 1, 4)], 0.1, smoothing=1.0)
    exam, clicks = 4.6, 4.6 / 7.0  # the exact sums, rounded once
    assert forward == pytest.approx((clicks + 0.1) / (exam + 1.0), rel=1e-12)
    assert stats.rate([("nobody", "cat:x")], 0.1, smoothing=1.0) == pytest.approx(0.1)


def test_pair_rows_keep_some_users_pairs_and_every_rate():
    """A publish shard asks for its users' (user, tag) and (user, item) pairs only; the rates
    that pool every user (per tag, overall, the examination weights) must not change."""
    rng = np.random.default_rng(3)
    n = 4000
    fb = pd.DataFrame(
        {
            C.POSITION: rng.integers(1, 11, n),
            "user_id": rng.choice([f"u{i}" for i in range(40)], n),
            "item_id": rng.choice(["i1", "i2", "i3", "i4"], n),
            C.TAG: rng.choice(["cat:a", "cat:b", None], n),
            C.CLICKED: rng.random(n) < 0.1,
        }
    )
    tags = {"i1": "cat:a", "i2": "cat:b", "i3": "cat:c", "i4": "cat:a"}
    whole = FeedbackStats.from_feedback(fb, tags)
    mine = fb["user_id"].isin({f"u{i}" for i in range(0, 40, 3)}).to_numpy()
    part = FeedbackStats.from_feedback(fb, tags, pair_rows=mine)
    kept = set(fb.loc[mine, "user_id"])
    assert part.user_tag == {k: v for k, v in whole.user_tag.items() if k[0] in kept}
    assert part.user_item == {k: v for k, v in whole.user_item.items() if k[0] in kept}
    assert len(part.user_item) < len(whole.user_item)
    assert part.tag_ctr == whole.tag_ctr and part.overall_ctr == whole.overall_ctr
    np.testing.assert_array_equal(part.examination, whole.examination)
    assert part.n_rows == whole.n_rows
