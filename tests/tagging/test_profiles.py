"""Interest profiles: decay, known vs candidate, the candidate reasons, and recall."""

from __future__ import annotations

import pandas as pd
import pytest

from ml.tagging.profiles import InterestProfiler, QueryTagger, interest_recall

pytestmark = pytest.mark.unit

AS_OF = pd.Timestamp("2026-10-02")
ITEM_TAGS = pd.DataFrame(
    {
        "item_id": ["lamp1", "lamp2", "vase1", "tent1", "boots1"],
        "tag": ["cat:home_lamps", "cat:home_lamps", "cat:home_vases", "cat:sports_tents", "cat:men_hiking_boots"],
        "score": 1.0,
    }
)


def _events(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "item_id", "event_at", "weight"]).assign(
        event_at=lambda d: pd.to_datetime(d["event_at"])
    )


def test_known_needs_enough_evidence_and_share(vocabulary):
    ev = _events(
        [
            ("u1", "lamp1", "2026-10-01", 1.0),
            ("u1", "lamp2", "2026-10-01", 5.0),
            ("u1", "lamp1", "2026-09-30", 3.0),
            ("u1", "tent1", "2026-10-01", 1.0),  # one view only: low evidence
            ("u1", "vase1", "2026-10-05", 5.0),  # after as_of: ignored
        ]
    )
    p = InterestProfiler(min_evidence=2, min_share=0.1, min_lift=0.0, adjacent_per_tag=0, segment_top=0).profile(
        ev, ITEM_TAGS, vocabulary, AS_OF
    )
    row = p.set_index("tag")
    assert row.loc["cat:home_lamps", "status"] == "known"
    assert row.loc["cat:home_lamps", "evidence_count"] == 3
    assert row.loc["cat:sports_tents", "status"] == "candidate"
    assert row.loc["cat:sports_tents", "candidate_reason"] == "low_evidence"
    assert "cat:home_vases" not in row.index
    # weights are shares within the kind, uncertainty shrinks with evidence
    assert row["weight"].sum() == pytest.approx(1.0)
    assert row.loc["cat:home_lamps", "uncertainty"] < row.loc["cat:sports_tents", "uncertainty"]
    assert row.loc["cat:home_lamps", "last_seen"] == pd.Timestamp("2026-10-01")


def test_decay_halves_weight_every_half_life(vocabulary):
    ev = _events([("u1", "lamp1", "2026-10-01", 1.0), ("u1", "tent1", "2026-09-01", 1.0)])
    prof = InterestProfiler(
        half_life_days=30.0, min_evidence=1, min_share=0.0, min_lift=0.0, adjacent_per_tag=0, segment_top=0
    )
    w = prof.profile(ev, ITEM_TAGS, vocabulary, AS_OF).set_index("tag")["weight"]  # ages: 1 and 31 days
    assert w["cat:sports_tents"] / w["cat:home_lamps"] == pytest.approx(0.5)


def test_candidates_from_search_graph_and_segment(vocabulary):
    ev = _events(
        [("u1", "lamp1", "2026-10-01", 1.0), ("u1", "lamp2", "2026-10-01", 1.0)]
        + [(f"s{i}", "boots1", "2026-10-01", 1.0) for i in range(3) for _ in range(2)]
        + [("u1", "boots1", "2026-09-30", 1.0)] * 2
    )
    searches = pd.DataFrame(
        {"user_id": ["u1"], "search_query": ["dome tent"], "event_at": pd.to_datetime(["2026-10-01"])}
    )
    query_tags = pd.DataFrame({"search_query": ["dome tent"], "tag": ["cat:sports_tents"], "share": [1.0]})
    segments = pd.DataFrame({"user_id": ["u1", "s0", "s1", "s2"], "segment": ["hikers"] * 4})
    p = InterestProfiler(min_evidence=2, min_share=0.0, min_lift=0.0, max_candidates=10).profile(
        ev, ITEM_TAGS, vocabulary, AS_OF, searches=searches, query_tags=query_tags, segments=segments
    )
    u1 = p[p["user_id"] == "u1"].set_index("tag")
    assert set(u1.index[u1["status"] == "known"]) == {"cat:home_lamps", "cat:men_hiking_boots"}
    assert u1.loc["cat:sports_tents", "candidate_reason"] == "searched_not_engaged"
    assert u1.loc["cat:sports_tents", "evidence_count"] == 1
    siblings = set(vocabulary.siblings("cat:home_lamps"))
    adjacent = set(u1.index[u1["candidate_reason"] == "graph_adjacent"])
    assert adjacent and adjacent <= siblings | set(vocabulary.siblings("cat:men_hiking_boots"))
    # s0..s2 know hiking boots; the segment's other users know nothing else, so u1 (who knows
    # hiking boots already) gets no segment candidate that duplicates a known tag
    assert not (u1["status"].eq("candidate") & u1.index.isin(["cat:home_lamps", "cat:men_hiking_boots"])).any()
    s0 = p[p["user_id"] == "s0"].set_index("tag")
    assert s0.loc["cat:home_lamps", "candidate_reason"] == "segment_popular"


def test_candidates_are_capped_per_user(vocabulary):
    ev = _events([("u1", "lamp1", "2026-10-01", 1.0)] * 3)
    kw = {"min_lift": 0.0, "adjacent_per_tag": 3}
    uncapped = InterestProfiler(max_candidates=10, **kw).profile(ev, ITEM_TAGS, vocabulary, AS_OF)
    capped = InterestProfiler(max_candidates=1, **kw).profile(ev, ITEM_TAGS, vocabulary, AS_OF)
    assert (uncapped["status"] == "candidate").sum() == 3
    assert (capped["status"] == "candidate").sum() == 1


def test_a_tag_engaged_at_the_shops_average_rate_is_not_an_interest(vocabulary):
    """Everybody views tents as often as lamps; only u1 also views vases, far above average."""
    rows = []
    for u in ("u1", "u2", "u3", "u4"):
        rows += [(u, "lamp1", "2026-10-01", 1.0), (u, "tent1", "2026-10-01", 1.0)] * 3
    rows += [("u1", "vase1", "2026-10-01", 1.0)] * 3
    p = InterestProfiler(min_lift=1.5, adjacent_per_tag=0, segment_top=0).profile(
        _events(rows), ITEM_TAGS, vocabulary, AS_OF
    )
    known = set(zip(p.loc[p["status"] == "known", "user_id"], p.loc[p["status"] == "known", "tag"], strict=True))
    assert known == {("u1", "cat:home_vases")}
    assert not (p["tag"] == "cat:sports_tents").any()  # average and well evidenced: not even a candidate
    everything = InterestProfiler(min_lift=0.0, adjacent_per_tag=0, segment_top=0).profile(
        _events(rows), ITEM_TAGS, vocabulary, AS_OF
    )
    assert (everything["status"] == "known").sum() == 9


def test_profiler_validates_its_settings():
    with pytest.raises(ValueError, match="half_life_days"):
        InterestProfiler(half_life_days=0)
    with pytest.raises(ValueError, match="min_share"):
        InterestProfiler(min_share=2)


def test_query_tagger_maps_queries_through_similar_items():
    texts = ["dome tent for camping", "two-person tent", "table lamp in brass", "floor lamp"]
    tags = [["cat:sports_tents"], ["cat:sports_tents"], ["cat:home_lamps"], ["cat:home_lamps"]]
    q = QueryTagger(top_k=2, min_share=0.5).fit(texts, tags).transform(["tent", "lamp", "tent", "", "zzz"])
    assert dict(zip(q["search_query"], q["tag"], strict=True)) == {"lamp": "cat:home_lamps", "tent": "cat:sports_tents"}


def test_interest_recall_counts_known_and_candidates():
    profiles = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2"],
            "tag": ["a", "b", "a"],
            "status": ["known", "candidate", "known"],
        }
    )
    truth = pd.DataFrame(
        {"user_id": ["u1", "u1", "u2", "u2", "u3"], "tag": ["a", "b", "a", "c", "a"], "status": ["active"] * 5}
    )
    r = interest_recall(profiles, truth)
    assert r["users"] == 2
    assert r["recall_known"] == pytest.approx((0.5 + 0.5) / 2)
    assert r["recall_known_or_candidate"] == pytest.approx((1.0 + 0.5) / 2)
    assert r["known_per_user"] == 1.0 and r["candidates_per_user"] == 0.5


def test_users_without_a_segment_still_get_profiles(vocabulary):
    """u2 only ever engaged with tags that have no parent (styles): no fallback segment."""
    tags = pd.concat(
        [ITEM_TAGS, pd.DataFrame({"item_id": ["scarf1"], "tag": ["style:boho"], "score": [1.0]})], ignore_index=True
    )
    ev = _events([("u1", "lamp1", "2026-10-01", 1.0)] * 3 + [("u2", "scarf1", "2026-10-01", 1.0)] * 3)
    p = InterestProfiler(min_lift=0.0).profile(ev, tags, vocabulary, AS_OF)
    assert set(p.loc[p["status"] == "known", "user_id"]) == {"u1", "u2"}
    assert "segment_popular" not in set(p.loc[p["user_id"] == "u2", "candidate_reason"])  # no segment to borrow
    assert "graph_adjacent" in set(p.loc[p["user_id"] == "u1", "candidate_reason"])
