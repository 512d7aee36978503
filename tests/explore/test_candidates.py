"""Contexts from frames: known and candidate tags, level-2 items, priors, profiles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.explore import columns as C
from ml.explore.candidates import CandidateInputs, CandidateSettings, ChampionCodes, build_contexts, item_arm_tags
from ml.explore.feedback import FeedbackStats
from ml.shop import taxonomy as tx

pytestmark = pytest.mark.unit

AS_OF = pd.Timestamp("2026-10-31")


def _items() -> pd.DataFrame:
    rows = []
    for leaf in tx.leaves()[:12]:  # Women and Men leaves
        for j in range(6):
            rows.append(
                {
                    "item_id": f"{leaf.tag}-{j}",
                    "category_path": leaf.path,
                    "category_l1": leaf.department,
                    "category_l3": leaf.leaf,
                    "n_users": 10 - j,
                }
            )
    return pd.DataFrame(rows)


def _inputs(**kw) -> CandidateInputs:
    items = item_arm_tags(_items())
    sandals, boots = "cat:women_sandals", "cat:women_boots"
    inter = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u1", "u2"],
            "item_id": [f"{sandals}-0", f"{sandals}-1", f"{boots}-0", "cat:men_loafers-0"],
            "weight": [5.0, 3.0, 1.0, 2.0],
            "n_events": [3, 2, 1, 1],
            "last_at": [AS_OF - pd.Timedelta(days=d) for d in (1, 2, 10, 3)],
        }
    )
    champion = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u1"],
            "item_id": [f"{sandals}-2", f"{sandals}-3", "cat:men_shirts-0"],
            "score": [0.9, 0.5, 0.4],
            "reason": ["similar to A", "similar to B", "similar to C"],
        }
    )
    excluded = pd.DataFrame({"user_id": ["u1"], "item_id": [f"{sandals}-0"]})
    base = {
        "items": items,
        "interactions": inter,
        "champion": champion,
        "excluded": excluded,
        "as_of": AS_OF,
        "sessions": {"u1": 8, "u2": 1},
    }
    base.update(kw)
    return CandidateInputs(**base)


def test_item_tags_follow_the_taxonomy():
    items = item_arm_tags(_items())
    leaves = {lf.tag for lf in tx.leaves()[:12]}
    assert set(items["tag"]) == leaves
    assert set(items["department"]) == {"women", "men"}


def test_known_tags_come_from_history_and_candidates_from_champion_and_siblings():
    u1, u2 = build_contexts(_inputs(), ["u1", "u2"], CandidateSettings(max_candidates=4))
    known = [t for t, k in zip(u1.tags, u1.known, strict=True) if k]
    cands = [t for t, k in zip(u1.tags, u1.known, strict=True) if not k]
    assert known[:2] == ["cat:women_sandals", "cat:women_boots"]
    assert cands[0] == "cat:men_shirts"  # reached by the champion, ranked first
    assert any(t.startswith("cat:women_") for t in cands[1:])  # same-department siblings
    # known tags are more likely a priori, the strongest one most
    pm = u1.prior_mean
    assert pm[0] > pm[1] and pm[u1.known].min() > pm[~u1.known].max()
    assert u1.segment == "default" and u2.segment == "new"


def test_items_are_disjoint_never_excluded_and_champion_first_with_reasons():
    (u1,) = build_contexts(_inputs(), ["u1"])
    flat = [i for its in u1.items for i in its]
    assert len(flat) == len(set(flat)) >= 10
    assert "cat:women_sandals-0" not in flat  # bought
    sandals = list(u1.items[u1.tags.index("cat:women_sandals")])
    assert sandals[:2] == ["cat:women_sandals-2", "cat:women_sandals-3"]
    assert u1.reasons["cat:women_sandals-2"] == "similar to A"
    for sc in u1.item_scores:
        assert (np.diff(sc) <= 1e-12).all() and ((sc > 0) & (sc <= 1)).all()


def test_impressions_without_clicks_push_an_item_down_its_tag():
    fb = pd.DataFrame(
        {
            C.POSITION: [1, 1, 1],
            "user_id": ["u1"] * 3,
            "item_id": ["cat:women_sandals-2"] * 3,
            C.TAG: ["cat:women_sandals"] * 3,
            C.CLICKED: [0, 0, 0],
        }
    )
    stats = FeedbackStats.from_feedback(fb)
    (u1,) = build_contexts(_inputs(feedback=stats), ["u1"])
    sandals = list(u1.items[u1.tags.index("cat:women_sandals")])
    assert sandals[0] == "cat:women_sandals-3"
    t = u1.tags.index("cat:women_sandals")
    assert u1.impressions[t] == pytest.approx(3.0) and u1.clicks[t] == 0


def test_profiles_replace_derived_tags_when_present():
    profiles = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u1"],
            "tag": ["cat:men_trainers", "cat:women_jeans", "style:eco"],
            "weight": [0.7, 0.3, 0.5],
            "evidence_count": [5, 0, 2],
            "last_seen": [AS_OF, None, AS_OF],
            "uncertainty": [0.2, 0.9, 0.5],
            "status": ["known", "candidate", "known"],
        }
    )
    (u1,) = build_contexts(_inputs(profiles=profiles), ["u1"])
    known = {t for t, k in zip(u1.tags, u1.known, strict=True) if k}
    assert known == {"cat:men_trainers"}  # style tags are not arms; history tags give way to the profile
    assert u1.tags[len(known)] == "cat:women_jeans"


def test_users_without_a_profile_keep_their_derived_tags_when_others_have_one():
    profiles = pd.DataFrame(
        {
            "user_id": ["u1"],
            "tag": ["cat:men_trainers"],
            "weight": [0.7],
            "evidence_count": [5],
            "last_seen": [AS_OF],
            "uncertainty": [0.2],
            "status": ["known"],
        }
    )
    mixed = build_contexts(_inputs(profiles=profiles), ["u1", "u2"])
    plain = build_contexts(_inputs(), ["u1", "u2"])
    assert [t for t, k in zip(mixed[0].tags, mixed[0].known, strict=True) if k] == ["cat:men_trainers"]
    # u2 has no profile: its known tags are derived from its interactions, as without profiles
    assert mixed[1].tags == plain[1].tags
    assert plain[1].tags[0] == "cat:men_loafers" and bool(plain[1].known[0])
    np.testing.assert_array_equal(mixed[1].features, plain[1].features)


def test_a_user_without_history_still_gets_a_full_slate():
    (u3,) = build_contexts(_inputs(), ["u3"], CandidateSettings(slate_size=10))
    assert u3.n_items >= 10 and not u3.known.any()


def test_champion_rows_in_any_order_and_untagged_items_give_the_same_contexts():
    """Scoring writes the champion's rows grouped by user (read without reordering); any other
    order is grouped first. Items without an arm tag are left out either way."""
    sandals = "cat:women_sandals"
    champion = pd.DataFrame(
        {
            "user_id": ["u1", "u2", "u1", "u2", "u1", "u2"],
            "item_id": [
                f"{sandals}-2",
                "cat:men_shirts-1",
                "not-in-catalogue",
                f"{sandals}-4",
                "cat:men_shirts-0",
                None,
            ],
            "score": [0.9, 0.8, 0.7, 0.6, 0.4, 0.3],
            "reason": ["A", "B", "C", "D", "E", "F"],
        }
    )
    grouped = champion.sort_values("user_id", kind="stable").reset_index(drop=True)
    scattered = build_contexts(_inputs(champion=champion), ["u1", "u2"])
    together = build_contexts(_inputs(champion=grouped), ["u1", "u2"])
    for a, b in zip(scattered, together, strict=True):
        assert a.tags == b.tags and a.reasons == b.reasons
        assert [list(x) for x in a.items] == [list(x) for x in b.items]
        assert all(np.array_equal(x, y) for x, y in zip(a.item_scores, b.item_scores, strict=True))
        assert np.array_equal(a.features, b.features)
    u1, u2 = together
    assert "C" not in u1.reasons.values() and "not-in-catalogue" not in [i for its in u1.items for i in its]
    assert u1.tags[u1.tags.index(sandals)] == sandals and u1.reasons == {f"{sandals}-2": "A", "cat:men_shirts-0": "E"}
    assert u2.reasons == {"cat:men_shirts-1": "B", f"{sandals}-4": "D"}


def _random_inputs(seed: int) -> CandidateInputs:
    """Many users with profiles (some without, some with no usable candidate row), champion
    rows in random order with tied scores, purchases and feedback that discounts items."""
    rng = np.random.default_rng(seed)
    items = item_arm_tags(_items())
    tags = sorted(items["tag"].unique())
    ids = items["item_id"].to_numpy()
    users = [f"u{n:03d}" for n in range(240)]
    prof = []
    for n, u in enumerate(users):
        if n % 10 == 0:
            continue  # no profile: derived tags
        picked = rng.choice(len(tags) + 2, size=rng.integers(1, 12), replace=False)
        for j, t in enumerate(picked.tolist()):
            tag = tags[t] if t < len(tags) else f"style:odd{t}"  # a tag that is no arm
            status = "known" if j % 2 == 0 or n % 10 == 1 else "candidate"  # n % 10 == 1: known only
            prof.append(
                {
                    "user_id": u,
                    "tag": tag,
                    "weight": float(rng.integers(1, 6)) / 5,  # ties
                    "evidence_count": np.nan if j == 3 else float(rng.integers(0, 9)),
                    "last_seen": pd.NaT if j == 2 else AS_OF - pd.Timedelta(hours=int(rng.integers(1, 900))),
                    "uncertainty": np.nan if j == 4 else float(rng.random()),
                    "status": status,
                }
            )
    champ = []
    for u in users:
        for i in rng.choice(len(ids), size=rng.integers(0, 20), replace=False).tolist():
            champ.append({"user_id": u, "item_id": ids[i], "score": float(rng.integers(0, 8)), "reason": None})
    champ_df = pd.DataFrame(champ).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    bought = pd.DataFrame({"user_id": rng.choice(users, 300), "item_id": rng.choice(ids, 300)})  # duplicates included
    fb_rows = pd.DataFrame(
        {
            C.POSITION: rng.integers(1, 11, 2000),
            "user_id": rng.choice(users, 2000),
            "item_id": rng.choice(ids, 2000),
            C.TAG: None,
            C.CLICKED: (rng.random(2000) < 0.2).astype(int),
        }
    )
    tag_of = dict(zip(items["item_id"], items["tag"], strict=True))
    inter = pd.DataFrame(
        {
            "user_id": rng.choice(users, 600),
            "item_id": rng.choice(ids, 600),
            "weight": rng.random(600),
            "n_events": rng.integers(1, 4, 600),
            "last_at": [AS_OF - pd.Timedelta(days=int(d)) for d in rng.integers(0, 30, 600)],
        }
    )
    return _inputs(
        interactions=inter,
        champion=champ_df,
        excluded=bought,
        profiles=pd.DataFrame(prof),
        feedback=FeedbackStats.from_feedback(fb_rows, tag_of),
        sessions={u: int(n % 5) for n, u in enumerate(users)},
    )


def _assert_same_contexts(fast, ref, users):
    assert [c.user_id for c in fast] == [c.user_id for c in ref] == list(users)
    for a, b in zip(fast, ref, strict=True):
        assert a.tags == b.tags, a.user_id
        assert [x.tolist() for x in a.items] == [x.tolist() for x in b.items], a.user_id
        assert [x.tolist() for x in a.item_scores] == [x.tolist() for x in b.item_scores], a.user_id
        np.testing.assert_array_equal(a.features, b.features)
        np.testing.assert_array_equal(a.prior_mean, b.prior_mean)
        np.testing.assert_array_equal(a.prior_strength, b.prior_strength)
        np.testing.assert_array_equal(a.impressions, b.impressions)
        assert (a.reasons, a.segment, a.n_sessions) == (b.reasons, b.segment, b.n_sessions)
        assert a.to_json() == b.to_json()


def _odd_inputs(inp: CandidateInputs) -> CandidateInputs:
    """``inp`` with the unusual rows the plain rules cover: a repeated profile tag, profile rows
    without a weight, non-finite champion scores, an item listed twice, transitions (one to a tag
    that is no arm, one pair listed twice) and reasons."""
    import dataclasses

    prof = inp.profiles
    odd = pd.concat([prof, prof.iloc[[1, 5, 9]].assign(weight=0.1), prof.iloc[[2, 7]].assign(weight=np.nan)])
    champ = inp.champion.copy()
    champ.loc[champ.index[:40:7], "score"] = [np.nan, np.inf, -np.inf, np.nan, 1.0, np.nan][: len(champ.index[:40:7])]
    champ["reason"] = [f"because {n}" if n % 3 else None for n in range(len(champ))]
    tags = sorted(inp.items["tag"].unique())
    transitions = pd.DataFrame(
        {
            "from_tag": [tags[0], tags[0], tags[3], tags[5], tags[3], "style:odd", tags[0]],
            "to_tag": [tags[1], tags[4], tags[1], "style:none", tags[0], tags[2], tags[1]],
            "probability": [0.5, 0.25, 0.125, 0.5, 0.3, 0.9, 0.7],
        }
    )
    items = pd.concat([inp.items, inp.items.iloc[[4]].assign(tag=tags[-1])], ignore_index=True)
    return dataclasses.replace(inp, profiles=odd, champion=champ, transitions=transitions, items=items)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("items_per_tag", [3, 10])
@pytest.mark.parametrize("odd", [False, True])
def test_whole_array_contexts_equal_the_per_user_oracle(seed, items_per_tag, odd):
    """Users with and without a profile, without a usable candidate row, without champion rows
    or history, and with arms too short for a slate (popular tags fill it) get the oracle's
    contexts."""
    import dataclasses

    from tests.explore.oracles import per_user_contexts

    inp = _random_inputs(seed)
    inp = _odd_inputs(inp) if odd else inp
    if seed == 2:  # no transitions, no profiles: every user's tags derived
        inp = dataclasses.replace(inp, profiles=None)
    users = [*sorted(set(inp.profiles["user_id"] if inp.profiles is not None else []) | set(inp.champion["user_id"]))]
    users += ["nobody-1", "nobody-2"]
    users = users[::-1] if seed == 1 else users
    s = CandidateSettings(items_per_tag=items_per_tag, slate_size=10 if items_per_tag == 3 else 25)
    _assert_same_contexts(build_contexts(inp, users, s), per_user_contexts(inp, users, s), users)


@pytest.mark.parametrize("cells", [1, 100])
def test_derived_candidates_scored_a_few_users_at_a_time_equal_the_per_user_oracle(cells, monkeypatch):
    """The derived candidates are scored on a (user, tag) grid of at most ``BLOCK_CELLS`` cells
    at a time: blocks of one user, and of a few, give the oracle's contexts (every user's tags
    derived, transitions with a repeated pair)."""
    import dataclasses

    from ml.explore import candidates
    from tests.explore.oracles import per_user_contexts

    monkeypatch.setattr(candidates, "BLOCK_CELLS", cells)
    inp = dataclasses.replace(_odd_inputs(_random_inputs(1)), profiles=None)
    users = [*sorted(set(inp.champion["user_id"])), "nobody-1"]
    s = CandidateSettings(max_candidates=5)
    _assert_same_contexts(build_contexts(inp, users, s), per_user_contexts(inp, users, s), users)


def test_contexts_of_no_user_and_of_an_empty_shop():
    from tests.explore.oracles import per_user_contexts

    inp = _random_inputs(0)
    assert len(build_contexts(inp, [])) == 0
    import dataclasses

    empty = dataclasses.replace(inp, items=inp.items.iloc[:0])
    _assert_same_contexts(build_contexts(empty, ["u001"]), per_user_contexts(empty, ["u001"]), ["u001"])


@pytest.mark.parametrize("seed", [0, 3])
def test_contexts_from_champion_codes_equal_those_from_the_ids(seed):
    """Publishing hands ``build_contexts`` the champion rows as positions into (users, items),
    as scoring has them; the contexts are the ones built by hashing the rows' ids, and codes
    that do not match the frame's rows are an error (never silently dropped)."""
    import dataclasses

    inp = _random_inputs(seed)
    users = sorted(set(inp.profiles["user_id"]) | set(inp.champion["user_id"]))
    s = CandidateSettings(items_per_tag=4, slate_size=10)
    # ids in an order of their own, as scoring's matrices have them (reversed here)
    user_ids = np.asarray(sorted(set(inp.champion["user_id"]), reverse=True), dtype=object)
    item_ids = np.asarray(sorted(set(inp.champion["item_id"]), reverse=True), dtype=object)
    row_u = pd.Index(user_ids).get_indexer(inp.champion["user_id"])
    row_i = pd.Index(item_ids).get_indexer(inp.champion["item_id"])
    coded = dataclasses.replace(inp, champion_codes=ChampionCodes(row_u, row_i, user_ids, item_ids))
    ref = [c.to_json() for c in build_contexts(inp, users, s)]
    assert [c.to_json() for c in build_contexts(coded, users, s)] == ref
    short = dataclasses.replace(inp, champion_codes=ChampionCodes(row_u[:-1], row_i[:-1], user_ids, item_ids))
    with pytest.raises(ValueError, match="champion codes hold"):
        build_contexts(short, users, s)
    with pytest.raises(ValueError, match="row users"):
        ChampionCodes(row_u, row_i[:-1], user_ids, item_ids)


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("name", ["greedy", "ucb1", "linucb", "thompson", "slot_allocator"])
def test_slates_from_context_columns_equal_the_per_context_oracle(seed, name):
    """Slates cut from the columns build_contexts returns are the rows (and cached draws) the
    context-by-context oracle gives, for policies with and without whole-array values."""
    from ml.explore.policies import make_policy
    from ml.explore.slate import build_slates, sample_slates, user_seed
    from tests.explore.oracles import per_context_slates

    inp = _random_inputs(seed)
    users = sorted(set(inp.profiles["user_id"]) | set(inp.champion["user_id"]))
    contexts = build_contexts(inp, users, CandidateSettings(items_per_tag=4, slate_size=10))
    # one user's champion reason, to see it used on a shown exploitation row
    first = contexts[1]
    item = str(first.items[0][0])
    first.reasons[item] = "similar to 'X' you interacted with"
    labels = {first.tags[0]: "Sandals for her"}
    pol = make_policy(name)
    cache: dict = {}
    got = build_slates(pol, contexts, 10, "2026-10-31", "run-1", n_draws=16, labels=labels, draws_cache=cache)
    ref = per_context_slates(pol, list(contexts), 10, "2026-10-31", "run-1", n_draws=16, labels=labels)
    pd.testing.assert_frame_equal(got, ref, check_exact=True)
    if name == "greedy":
        assert "similar to 'X' you interacted with" in set(got["reason"])
    assert sorted(cache) == (users if pol.deterministic else [])
    for u, d in cache.items():
        one = sample_slates(pol, contexts[users.index(u)], 10, np.random.default_rng(user_seed(u, "2026-10-31")))
        np.testing.assert_array_equal(d.items, one.items)
        np.testing.assert_array_equal(d.scores, one.scores)


@pytest.mark.parametrize("seed", [0, 3])
def test_context_json_written_from_the_columns_equals_each_contexts_own(seed):
    """The slate log writes every context's JSON from the columns; it is the text each
    ``SlateContext.to_json`` gives, also for -0.0, NaN, infinities, numbers that round to the
    same six decimals, unusual tag and item ids, a session count and a segment."""
    import dataclasses

    inp = _random_inputs(seed)
    users = sorted(set(inp.profiles["user_id"]) | set(inp.champion["user_id"]))
    inp = dataclasses.replace(inp, sessions={users[0]: 7, users[1]: 1}, segments={users[2]: "loyal \u00e9"})
    contexts = build_contexts(inp, users, CandidateSettings(items_per_tag=4, slate_size=10))
    cols = contexts.columns
    # values the encoder must write exactly as json.dumps(round(x, 6)) does
    cols.features[0, :6] = [-0.0, np.nan, np.inf, -np.inf, 0.1234564999, 0.1234565001]
    cols.prior_mean[1] = 1e-7
    cols.item_scores[:3] = [2.5, -0.0, 1 / 3]
    cols.tags[0] = 'tag "quoted" \\ \u00fc'
    cols.item_ids[1] = "item\n\u2603"
    rows = cols.to_json_rows()
    assert rows == [c.to_json() for c in contexts]
    assert '"n_sessions":7' in rows[0] and '"segment":"loyal \\u00e9"' in rows[2]
    assert "NaN" in rows[0] and "-0.0" in rows[0]


@pytest.mark.dags
def test_contexts_of_the_living_shop_equal_the_per_user_oracle(living_shop):
    """The tiny shop after two simulated days through the DAGs (real tags, profiles, transitions,
    segments and logged feedback): every user of ``raw.users``, with or without a profile or
    champion rows, plus one the shop never saw, gets the oracle's context."""
    from ml.explore import store
    from tests.explore.oracles import per_user_contexts

    wh = living_shop["wh"]
    champion = wh.query("select user_id, item_id, score, reason from serving.recommendations_current")
    inp = store.read_candidate_inputs(wh, champion, ("purchase",), store.load_feedback(wh))
    users = [*sorted(wh.query("select distinct user_id from raw.users")["user_id"]), "never-seen"]
    assert inp.profiles is not None and set(users) - set(inp.profiles["user_id"]), "some users have no profile"
    s = CandidateSettings(items_per_tag=10, slate_size=10)
    _assert_same_contexts(build_contexts(inp, users, s), per_user_contexts(inp, users, s), users)
