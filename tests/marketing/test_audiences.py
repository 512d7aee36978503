import pandas as pd
import pytest

from ml.marketing.audiences import AudienceSpec, build_audience, load_specs, overlap_report

pytestmark = pytest.mark.unit

NOW = pd.Timestamp("2026-10-31")


def _profiles():
    rows = [
        ("u1", "cat:sports_tents", 0.9, "known", "2026-10-30"),
        ("u2", "cat:sports_tents", 0.05, "known", "2026-10-30"),  # below min weight
        ("u3", "cat:sports_tents", 0.8, "candidate", "2026-10-30"),  # candidate only
        ("u4", "cat:sports_tents", 0.7, "known", "2026-06-01"),  # stale
        ("u5", "cat:sports_tents", 0.6, "known", "2026-10-29"),  # opted out
        ("u6", "cat:sports_tents", 0.6, "known", "2026-10-29"),  # recent purchaser
        ("u7", "cat:sports_backpacks", 0.5, "known", "2026-10-29"),
        ("u8", "cat:home_lamps", 0.9, "known", "2026-10-29"),
        ("u9", "cat:sports_tents", 0.5, "known", "2026-10-29"),
        ("u9", "cat:sports_backpacks", 0.4, "known", "2026-10-29"),
    ]
    return pd.DataFrame(rows, columns=["user_id", "tag", "weight", "status", "last_seen"])


def _users():
    return pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(1, 11)],
            "marketing_opt_out": [False, False, False, False, True, False, False, False, False, True],
            "segment": [0, 0, 0, 0, 0, 0, 1, 0, 0, 0],
            "monetary": [100, 10, 50, 50, 50, 50, 500, 20, 80, 90],
        }
    )


PURCHASES = pd.DataFrame({"user_id": ["u6", "u1"], "event_at": ["2026-10-25", "2026-08-01"]})


def spec(**kw):
    base = {
        "name": "outdoor",
        "tags": [{"tag": "cat:sports_tents", "min_weight": 0.1}, {"tag": "cat:sports_backpacks", "min_weight": 0.1}],
        "recency_days": 30,
        "exclude_purchased_within_days": 14,
    }
    return AudienceSpec.from_dict({**base, **kw})


def test_users_whose_latest_review_reads_negative_can_be_left_out():
    users = _users().assign(latest_review=[None, None, None, None, None, None, "negative", None, "positive", None])
    res = build_audience(spec(exclude_negative_reviewers=True), _profiles(), users, PURCHASES, NOW)
    assert set(res.members["user_id"]) == {"u1", "u9"}
    assert res.excluded["negative_latest_review"] == 1
    # off by default; and a spec that asks for it without any scored review says why
    assert "u7" in set(build_audience(spec(), _profiles(), users, PURCHASES, NOW).members["user_id"])
    with pytest.raises(ValueError, match="no review has been scored"):
        build_audience(spec(exclude_negative_reviewers=True), _profiles(), _users(), PURCHASES, NOW)


def test_rules_and_exclusions():
    res = build_audience(spec(), _profiles(), _users(), PURCHASES, NOW)
    assert set(res.members["user_id"]) == {"u1", "u7", "u9"}
    assert res.excluded == {"opted_out": 1, "recent_purchaser": 1}
    u9 = res.members.set_index("user_id").loc["u9"]
    assert u9["matched_tags"] == "cat:sports_backpacks,cat:sports_tents"
    assert u9["score"] == pytest.approx(0.9)
    assert res.members["score"].is_monotonic_decreasing


def test_candidates_segments_spend_and_match_all():
    assert "u3" in set(
        build_audience(spec(include_candidates=True), _profiles(), _users(), PURCHASES, NOW).members["user_id"]
    )
    seg = build_audience(spec(segments=[1]), _profiles(), _users(), PURCHASES, NOW)
    assert set(seg.members["user_id"]) == {"u7"}
    band = build_audience(spec(spend_band=[60, 200]), _profiles(), _users(), PURCHASES, NOW)
    assert set(band.members["user_id"]) == {"u1", "u9"}
    both = build_audience(spec(match="all"), _profiles(), _users(), PURCHASES, NOW)
    assert set(both.members["user_id"]) == {"u9"}


def test_opted_out_users_never_appear_even_as_lookalikes():
    s = spec(lookalike={"max_size": 50, "min_similarity": 0.0}, recency_days=None, exclude_purchased_within_days=None)
    res = build_audience(s, _profiles(), _users(), PURCHASES, NOW)
    assert "u5" not in set(res.members["user_id"])
    assert res.excluded["opted_out"] == 1


def test_lookalike_cap_and_threshold():
    s = spec(lookalike={"max_size": 1, "min_similarity": 0.5}, recency_days=None, exclude_purchased_within_days=None)
    res = build_audience(s, _profiles(), _users(), PURCHASES, NOW)
    look = res.members[res.members["source"] == "lookalike"]
    assert len(look) == res.lookalike_added <= 1
    assert (look["score"] >= 0.5).all()
    assert res.lookalike_threshold == 0.5
    none = build_audience(
        spec(lookalike={"max_size": 10, "min_similarity": 0.999}, recency_days=None),
        _profiles(),
        _users(),
        PURCHASES,
        NOW,
    )
    assert (none.members["source"] == "rule").all()


def test_bad_specs_are_rejected_with_a_reason():
    with pytest.raises(ValueError, match="at least one tag"):
        AudienceSpec.from_dict({"name": "x", "tags": []})
    with pytest.raises(ValueError, match="match must be"):
        spec(match="some")
    with pytest.raises(ValueError, match="letters, digits"):
        spec(name="bad name")


def test_repo_specs_load_and_overlap_report():
    specs = load_specs()
    assert {"outdoor_enthusiasts", "home_style_explorers"} <= set(specs)
    a = pd.DataFrame({"user_id": ["u1", "u2"]})
    b = pd.DataFrame({"user_id": ["u2", "u3"]})
    rep = overlap_report({"a": a, "b": b}).set_index(["audience", "other"])
    assert rep.loc[("a", "b"), "shared"] == 1
    assert rep.loc[("a", "b"), "jaccard"] == pytest.approx(1 / 3)
    assert rep.loc[("a", "a"), "jaccard"] == 1.0
