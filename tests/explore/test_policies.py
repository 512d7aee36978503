"""Policies and the slate sampler: propensities, exploration flags, reproducibility, budgets."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ml.explore import columns as C
from ml.explore.context import FEATURES, SlateContext
from ml.explore.policies import POLICIES, SlotAllocator, make_policy
from ml.explore.slate import build_slates, item_codes, sample_slates

pytestmark = pytest.mark.unit

STOCHASTIC = [n for n, cls in POLICIES.items() if not cls.deterministic]
DETERMINISTIC = [n for n, cls in POLICIES.items() if cls.deterministic]


def make_context(
    user: str = "u1",
    known: tuple[str, ...] = ("cat:a", "cat:b"),
    candidates: tuple[str, ...] = ("cat:c", "cat:d", "cat:e"),
    n_items: int = 6,
    n_sessions: int = 10,
    segment: str = "default",
    clicks: dict[str, tuple[float, float]] | None = None,
) -> SlateContext:
    """A context with known tags (prior mean 0.2) and candidate tags (0.05), n_items per tag."""
    tags = list(known) + list(candidates)
    T = len(tags)
    is_known = np.array([t in known for t in tags])
    prior = np.where(is_known, 0.2, 0.05)
    strength = np.where(is_known, 15.0, 5.0)
    clicks = clicks or {}
    exam = np.array([clicks.get(t, (0.0, 0.0))[0] for t in tags])
    clk = np.array([clicks.get(t, (0.0, 0.0))[1] for t in tags])
    feats = np.zeros((T, len(FEATURES)))
    feats[:, 0] = 1.0
    feats[:, 1] = is_known
    a, b = prior * strength + clk, (1 - prior) * strength + np.maximum(exam - clk, 0)
    feats[:, FEATURES.index("posterior_mean")] = a / (a + b)
    items = [np.array([f"{t}-i{j}" for j in range(n_items)], dtype=object) for t in tags]
    scores = [np.linspace(1.0, 0.5, n_items) for _ in tags]
    return SlateContext(
        user_id=user,
        tags=tags,
        known=is_known,
        prior_mean=prior,
        prior_strength=strength,
        impressions=exam,
        clicks=clk,
        features=feats,
        items=items,
        item_scores=scores,
        n_sessions=n_sessions,
        segment=segment,
    )


@pytest.mark.parametrize("name", list(POLICIES))
def test_every_slot_is_a_distribution_and_slates_have_k_distinct_items(name):
    ctx = make_context()
    draws = sample_slates(make_policy(name), ctx, k=8, rng=np.random.default_rng(0), n_draws=500)
    for j in range(8):
        _, probs = draws.slot_distribution(j)
        assert probs.sum() == pytest.approx(1.0)
        assert (probs > 0).all()
    for row in draws.items:
        assert len(set(row.tolist())) == 8 and (row >= 0).all()
    p, se = draws.propensity()
    assert ((p > 0) & (p <= 1)).all()
    assert (se >= 0).all()


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_policies_show_their_slate_with_propensity_one(name):
    draws = sample_slates(make_policy(name), make_context(), 6, np.random.default_rng(0), n_draws=500)
    assert draws.n_draws == 1
    p, se = draws.propensity()
    assert (p == 1.0).all() and (se == 0.0).all()


def test_monte_carlo_propensity_matches_the_exact_probability():
    """epsilon-greedy with one slot: the greedy tag has probability 1 - eps + eps/T exactly."""
    eps, n = 0.3, 20_000
    ctx = make_context(known=("cat:a",), candidates=("cat:b", "cat:c", "cat:d"), n_items=2)
    draws = sample_slates(make_policy("epsilon_greedy", epsilon=eps), ctx, 1, np.random.default_rng(1), n)
    _, _, codes = item_codes(ctx)
    exact = 1 - eps + eps / 4
    got = draws.slot_probability(0, codes["cat:a-i0"])
    assert abs(got - exact) < 4 * np.sqrt(exact * (1 - exact) / n)
    assert draws.slot_probability(0, codes["cat:b-i0"]) == pytest.approx(eps / 4, abs=4 * np.sqrt(0.1 / n))


def test_exploration_flag_marks_picks_that_differ_from_greedy():
    ctx = make_context()
    greedy = sample_slates(make_policy("greedy"), ctx, 8, np.random.default_rng(0))
    assert not greedy.explore.any()
    draws = sample_slates(make_policy("epsilon_greedy", epsilon=0.5), ctx, 8, np.random.default_rng(0), 300)
    # a slot whose item differs from the greedy slate's (with the same earlier picks) is exploration
    first = draws.tags[:, 0]
    assert (draws.explore[:, 0] == (first != greedy.tags[0, 0])).all()
    assert 0.2 < draws.explore[:, 0].mean() < 0.6


def test_publish_rows_are_reproducible_per_user_and_day():
    contexts = [make_context(user=f"u{i}") for i in range(20)]
    pol = make_policy("thompson")
    a = build_slates(pol, contexts, 6, "2026-11-01", "run-1", n_draws=64)
    b = build_slates(pol, contexts, 6, "2026-11-01", "run-1", n_draws=64)
    pd.testing.assert_frame_equal(a, b)
    # a user's slate does not depend on who else is in the batch
    alone = build_slates(pol, contexts[7:8], 6, "2026-11-01", "run-1", n_draws=64)
    pd.testing.assert_frame_equal(alone.reset_index(drop=True), a[a["user_id"] == "u7"].reset_index(drop=True))
    other_day = build_slates(pol, contexts, 6, "2026-11-02", "run-1", n_draws=64)
    assert not other_day["item_id"].equals(a["item_id"])
    assert a[C.RECOMMENDATION_ID].nunique() == 20
    assert set(a.columns) >= {"reason", "reason_tag", C.POLICY, C.PROPENSITY, C.IS_EXPLORATION, C.ARM_FEATURES}
    assert all(len(json.loads(f)) == len(FEATURES) for f in a[C.ARM_FEATURES])


def test_greedy_scores_never_increase_down_the_slate():
    ctx = make_context(clicks={"cat:b": (20.0, 8.0)})
    draws = sample_slates(make_policy("greedy"), ctx, 10, np.random.default_rng(0))
    s = draws.scores[0]
    assert (s[:-1] >= s[1:] - 1e-12).all()


def test_slot_allocator_spends_its_budget_on_candidates_at_reserved_slots():
    pol = SlotAllocator(budget={"default": 0.2, "vip": 0.4}, min_sessions=3)
    k = 10
    ctx = make_context(n_sessions=10)
    assert pol.n_explore(ctx, k) == 2
    assert pol.n_explore(make_context(segment="vip"), k) == 4
    assert pol.n_explore(make_context(n_sessions=1), k) == 0  # 0.2 * 10 * 1/3 -> 0 slots
    assert pol.n_explore(make_context(n_sessions=2), k) == 1
    reserved = SlotAllocator.explore_slots(k, 2)
    assert 0 not in reserved and len(reserved) == 2
    draws = sample_slates(pol, ctx, k, np.random.default_rng(3), 400)
    known = set(np.flatnonzero(ctx.known))
    for j in range(k):
        if j in reserved:
            assert draws.explore[:, j].all()
            assert not set(draws.tags[:, j].tolist()) & known
        else:
            assert not draws.explore[:, j].any()
            assert set(draws.tags[:, j].tolist()) <= known
    # candidates with a better posterior (upside) are tried more often
    hot = make_context(clicks={"cat:e": (3.0, 2.0)})
    hd = sample_slates(pol, hot, k, np.random.default_rng(3), 400)
    e = hot.tags.index("cat:e")
    j = min(reserved)
    assert (hd.tags[:, j] == e).mean() > (draws.tags[:, j] == e).mean()
    with pytest.raises(ValueError, match="budget"):
        SlotAllocator(budget={"default": 1.5}).n_explore(ctx, k)


def test_feedback_moves_thompson_towards_a_clicked_candidate():
    base = make_context()
    clicked = make_context(clicks={"cat:d": (10.0, 6.0)})
    d = base.tags.index("cat:d")
    rng = np.random.default_rng(0)
    before = (sample_slates(make_policy("thompson"), base, 4, rng, 1000).tags == d).mean()
    after = (sample_slates(make_policy("thompson"), clicked, 4, rng, 1000).tags == d).mean()
    assert after > before + 0.1
    assert clicked.posterior_mean()[d] > base.posterior_mean()[d]


def test_linear_policies_learn_from_logged_arm_features():
    """Clicks only on 'known' arms: the fitted weight of the known feature becomes positive."""
    rng = np.random.default_rng(0)
    n = 3000
    known = rng.random(n) < 0.5
    X = np.zeros((n, len(FEATURES)))
    X[:, 0] = 1.0
    X[:, 1] = known
    X[:, FEATURES.index("posterior_mean")] = 0.1
    clicked = (rng.random(n) < np.where(known, 0.3, 0.02)).astype(int)
    fb = pd.DataFrame(
        {
            C.POSITION: rng.integers(1, 6, n),
            C.CLICKED: clicked,
            C.ARM_FEATURES: [json.dumps(x.tolist()) for x in X],
        }
    )
    for name in ("linucb", "lin_thompson"):
        pol = make_policy(name).fit(fb)
        assert pol.n_feedback_ == n
        assert pol.theta_[FEATURES.index("known")] > 0.1
        ctx = make_context()
        v = pol.exploit_values(ctx)
        assert v[ctx.known].min() > v[~ctx.known].max()


def test_unknown_policies_and_parameters_are_rejected():
    with pytest.raises(ValueError, match="unknown policy"):
        make_policy("magic")
    with pytest.raises(ValueError, match="bad parameters"):
        make_policy("thompson", epsilon=0.1)
    with pytest.raises(ValueError, match="k must be"):
        sample_slates(make_policy("greedy"), make_context(), 0, np.random.default_rng(0))


def test_context_round_trips_through_json():
    ctx = make_context(clicks={"cat:a": (4.0, 1.0)})
    back = SlateContext.from_json(ctx.to_json())
    assert back.tags == ctx.tags
    np.testing.assert_allclose(back.posterior_mean(), ctx.posterior_mean(), atol=1e-6)
    a = sample_slates(make_policy("thompson"), ctx, 5, np.random.default_rng(9), 50)
    b = sample_slates(make_policy("thompson"), back, 5, np.random.default_rng(9), 50)
    np.testing.assert_array_equal(a.items, b.items)


@pytest.mark.parametrize("name", ["greedy", "ucb1", "linucb"])
def test_batched_deterministic_slates_equal_one_user_at_a_time(name):
    """The publish path fills plain deterministic policies' slates for many users at once:
    same tags, items, flags and scores as the per-user sampler, with uneven tag/item counts."""
    rng = np.random.default_rng(3)
    ctxs = []
    for u in range(40):
        n_known, n_cand = int(rng.integers(1, 4)), int(rng.integers(0, 5))
        ctx = make_context(
            f"u{u}",
            known=tuple(f"cat:k{j}" for j in range(n_known)),
            candidates=tuple(f"cat:c{j}" for j in range(n_cand)),
            n_items=int(rng.integers(1, 5)),
            clicks={"cat:k0": (float(rng.integers(0, 20)), float(rng.integers(0, 3)))},
        )
        ctx.item_scores = [np.sort(rng.random(len(s)))[::-1] for s in ctx.item_scores]
        ctxs.append(ctx)
    pol = make_policy(name)
    cache: dict = {}
    build_slates(pol, ctxs, 8, "2026-10-01", "r", draws_cache=cache)
    batched = [cache[c.user_id] for c in ctxs]
    for ctx, got in zip(ctxs, batched, strict=True):
        one = sample_slates(pol, ctx, 8, np.random.default_rng(0))
        np.testing.assert_array_equal(got.items, one.items)
        np.testing.assert_array_equal(got.tags, one.tags)
        np.testing.assert_array_equal(got.explore, one.explore)
        np.testing.assert_allclose(got.scores, one.scores, equal_nan=True)
    assert any((d.items[0] < 0).any() for d in batched)  # some users cannot fill 8 slots


def test_build_slates_keeps_deterministic_draws_for_reuse_only():
    ctxs = [make_context(f"u{i}") for i in range(5)]
    cache: dict = {}
    build_slates(make_policy("greedy"), ctxs, 6, "2026-10-01", "r", draws_cache=cache)
    assert sorted(cache) == [c.user_id for c in ctxs] and all(d.n_draws == 1 for d in cache.values())
    cache.clear()
    build_slates(make_policy("thompson"), ctxs, 6, "2026-10-01", "r", n_draws=32, draws_cache=cache)
    assert cache == {}  # Monte Carlo draws are re-drawn from the seed instead of held in memory


def test_arm_features_of_many_rows_are_the_strings_of_one_row_at_a_time():
    """``build_slates`` writes all shown arms' features with ``arm_features_json_rows``; each
    string must be what ``arm_features_json`` gives for that row, non-finite values included."""
    from ml.explore.context import arm_features_json, arm_features_json_rows

    rng = np.random.default_rng(3)
    rows = [rng.random(8) * 10.0 ** rng.integers(-8, 4) for _ in range(200)]
    rows += [np.array([1.0, np.inf, np.nan, -0.0, 1e-7, 0.1234565, 2.5e-6, -np.inf])]
    many = arm_features_json_rows(rows)
    assert many == [arm_features_json(r) for r in rows]
    assert many[-1].startswith("[1.0,Infinity,NaN,") and many[-1].endswith(",-Infinity]")
    assert arm_features_json_rows([]) == []


def test_publishing_reads_the_feedback_columns_each_policy_fits_on(tmp_path):
    """Every policy fits the same on ``load_feedback(columns=...)`` of its declared columns and
    the statistics' as on the whole mart, and the narrow read holds only those columns."""
    from ml.explore.feedback import STATS_COLUMNS, FeedbackStats
    from ml.explore.store import load_feedback
    from ml.warehouse import Warehouse

    rng = np.random.default_rng(5)
    n = 2000
    X = rng.random((n, len(FEATURES)))
    full = pd.DataFrame({c: [f"{c}-{i % 7}" for i in range(n)] for c in C.FEEDBACK_COLUMNS})
    full[C.POSITION] = rng.integers(1, 11, n).astype("int32")
    full["user_id"] = [f"u{i}" for i in rng.integers(0, 50, n)]
    full["item_id"] = [f"i{i}" for i in rng.integers(0, 80, n)]
    full[C.TAG] = np.where(rng.random(n) < 0.1, None, [f"cat:{i}" for i in rng.integers(0, 6, n)])
    full[C.CLICKED] = (rng.random(n) < 0.2).astype("int32")
    full[C.PURCHASED] = 0
    full[C.SHOWN_AT] = pd.Timestamp("2026-11-01") + pd.to_timedelta(rng.integers(0, 86400, n), unit="s")
    for c in (C.REVENUE, C.PROPENSITY, C.PROPENSITY_SE):
        full[c] = rng.random(n)
    full[C.IS_EXPLORATION] = rng.random(n) < 0.3
    full[C.HAS_PROPENSITY] = True
    full[C.ARM_FEATURES] = [json.dumps(x.tolist()) for x in X]
    wh = Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    with wh.connect() as con:
        wh.execute(con, "create schema if not exists marts")
        con.register("_fb", full)
        con.execute(f"create table {C.BANDIT_FEEDBACK} as select * from _fb")
        con.unregister("_fb")
    whole = load_feedback(wh)
    assert list(whole.columns) == list(C.FEEDBACK_COLUMNS)
    for name in POLICIES:
        narrow = load_feedback(wh, columns=(*STATS_COLUMNS, *POLICIES[name].feedback_columns))
        assert set(narrow.columns) == {*STATS_COLUMNS, *POLICIES[name].feedback_columns}
        a, b = make_policy(name).fit(whole), make_policy(name).fit(narrow)
        fitted = {k: v for k, v in vars(a).items() if k.endswith("_")}
        assert fitted and fitted.keys() == {k for k in vars(b) if k.endswith("_")}
        for k, v in fitted.items():
            np.testing.assert_array_equal(np.asarray(v), np.asarray(getattr(b, k)), err_msg=f"{name}.{k}")
    sa, sb = FeedbackStats.from_feedback(whole), FeedbackStats.from_feedback(load_feedback(wh, columns=STATS_COLUMNS))
    assert sa.n_rows == sb.n_rows == n and sa.tag_ctr == sb.tag_ctr and sa.overall_ctr == sb.overall_ctr
    assert make_policy("linucb").fit(whole).n_feedback_ == n  # (the linear fit used the logged features)
