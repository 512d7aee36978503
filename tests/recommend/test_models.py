import pickle

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from ml.recommend import MODELS, InteractionData, ItemKNN, Popularity, make_model
from ml.recommend.base import lookup_rows, row_keys, top_k, zscore_rows

pytestmark = pytest.mark.unit

X = sp.csr_matrix(
    np.array(
        [
            [1, 1, 0, 0, 0],
            [1, 1, 1, 0, 0],
            [0, 1, 1, 0, 0],
            [0, 0, 0, 1, 1],
            [0, 0, 0, 1, 0],
        ],
        dtype=np.float32,
    )
)


def planted(n_users: int = 60, n_items: int = 24, seed: int = 0) -> tuple[sp.csr_matrix, pd.DataFrame, np.ndarray]:
    """Two communities: users 0..n/2 use items 0..n_items/2, the others the rest; every user
    has 5 random items of their half. Returns (X, events, item_categories)."""
    rng = np.random.default_rng(seed)
    half_u, half_i = n_users // 2, n_items // 2
    rows, cols = [], []
    for u in range(n_users):
        lo = 0 if u < half_u else half_i
        for i in rng.choice(half_i, size=5, replace=False):
            rows.append(u)
            cols.append(lo + int(i))
    M = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))
    ts = 1.7e9 + np.arange(len(rows)) * 60.0
    events = pd.DataFrame({"row": rows, "col": cols, "ts": ts})
    cats = (np.arange(n_items) >= half_i).astype(np.int64)
    return M, events, cats


def _context(events: pd.DataFrame, cats: np.ndarray, n_users: int) -> dict:
    F = sp.csr_matrix(np.eye(2, dtype=np.float32)[cats])
    return {
        "events": events,
        "item_features": F,
        "feature_names": np.array(["category=A", "category=B"], dtype=object),
        "item_categories": cats,
        "user_features": np.zeros((n_users, 2), np.float32),
    }


FAST_PARAMS = {
    "two_tower": {"epochs": 3, "hidden": 16, "dim": 8, "batch_size": 32},
    "bpr": {"iterations": 30, "learning_rate": 0.05},
    "als": {"factors": 8, "iterations": 5},
    "ease": {"l2": 10.0, "session_weight": 0.5},
    "context": {"base": "ease", "base_params": {"l2": 10.0}},
    "blend": {"components": [{"model": "ease", "params": {"l2": 10.0}}, {"model": "item_knn"}], "validation": 0.3},
}
FAST = [m for m in MODELS if m != "two_tower"]


def test_top_k_sorted_and_skips_minus_inf():
    s = np.array([[0.1, 0.9, -np.inf, 0.5]])
    idx, sc = top_k(s, 4)
    assert idx.tolist() == [[1, 3, 0, -1]]
    assert np.all(np.diff(sc[0][:3]) <= 0)


def _ranked_one_by_one(s: np.ndarray, k: int) -> tuple[list[list[int]], list[list[float]]]:
    """Each row's finite entries sorted by score, equal scores by index, the first k."""
    idx, sc = [], []
    for row in s:
        order = [int(j) for j in np.argsort(-row, kind="stable") if np.isfinite(row[j])][:k]
        idx.append(order + [-1] * (min(k, len(row)) - len(order)))
        sc.append([float(row[j]) for j in order] + [-np.inf] * (min(k, len(row)) - len(order)))
    return idx, sc


@pytest.mark.parametrize("k", [0, 1, 5, 50, 400, 2000])
def test_top_k_ranks_every_row_as_a_full_sort_would(k):
    """Ties broken by index, NaN and infinite scores never returned, rows with fewer finite
    entries than k, rows whose best entries sit between the sampled columns, and k beyond the
    row's length give what sorting each row gives."""
    rng = np.random.default_rng(3)
    s = rng.standard_normal((40, 1000)).astype(np.float32)
    s[:5] = np.round(s[:5])  # many ties
    s[5, rng.integers(0, 1000, 300)] = np.nan
    s[6, :] = -np.inf
    s[6, [7, 3]] = [1.0, 2.0]
    s[7, ::2] = np.inf
    s[8, 1::2] = 10.0 + rng.random(500)  # the best half on the columns a stride of two skips
    s[9, :] = 0.0
    idx, sc = top_k(s, k)
    want_idx, want_sc = _ranked_one_by_one(s, k)
    assert idx.tolist() == want_idx
    assert sc.tolist() == want_sc
    assert sc.dtype == np.float32
    assert top_k(s[:0], k)[0].shape == (0, min(k, 1000))


def test_popularity_ranks_by_usage_and_excludes_seen():
    m = Popularity(use_weights=False).fit(X)
    idx, _ = m.recommend(X, np.array([3]), k=2)
    assert idx[0].tolist() == [1, 0]  # item 1 (3 users), then item 0 (2 users); 3 and 4 seen


def test_popularity_decays_old_events():
    events = pd.DataFrame({"row": [0, 1, 2], "col": [0, 0, 1], "ts": [0.0, 0.0, 30 * 86400.0]})
    M = sp.csr_matrix(np.array([[1, 0], [1, 0], [0, 1]], np.float32))
    m = Popularity(half_life_days=1.0).fit(M, events=events)
    assert m.popularity_[1] > m.popularity_[0]  # one fresh event beats two 30-day-old ones
    assert Popularity(half_life_days=0.0).fit(M, events=events).popularity_[0] == 1.0


def test_item_knn_recommends_co_consumed_item_and_explains_it():
    m = ItemKNN(neighbours=10, shrinkage=0.0, bm25=False).fit(X)
    idx, _sc = m.recommend(X, np.array([0, 4]), k=1)
    assert idx[0, 0] == 2  # user 0 has {0,1}; item 2 co-occurs with 1
    assert idx[1, 0] == 4  # user 4 has {3}; item 4 co-occurs with 3
    why = m.explain(X, np.array([4]), idx[1:])
    assert why[0][0] == {"kind": "similar_item", "item": 3}


def test_item_knn_keeps_only_top_neighbours_with_cosine_and_shrinkage():
    m = ItemKNN(neighbours=1, shrinkage=0.0, bm25=False).fit(X)
    S = m.similarity_.toarray()
    assert ((S > 0).sum(axis=0) <= 1).all()
    # cos(item 3, item 4) = 1 / sqrt(2 * 1)
    assert S[3, 4] == pytest.approx(1 / np.sqrt(2), rel=1e-5)
    shrunk = ItemKNN(neighbours=1, shrinkage=1.0, bm25=False).fit(X).similarity_.toarray()
    assert shrunk[3, 4] == pytest.approx(1 / (np.sqrt(2) + 1.0), rel=1e-5)


def test_scikit_style_params_and_factory():
    m = make_model("item_knn", neighbours=5)
    assert m.get_params() == {"neighbours": 5, "shrinkage": 10.0, "bm25": True}
    with pytest.raises(KeyError):
        make_model("nope")
    with pytest.raises(ValueError, match="no parameter"):
        m.set_params(bogus=1)


@pytest.mark.parametrize("name", list(MODELS))
def test_init_only_stores_params_and_fit_returns_self(name):
    m = make_model(name, **FAST_PARAMS.get(name, {}))
    assert not [k for k in vars(m) if k.endswith("_")]
    clone = make_model(name, **m.get_params())
    assert clone.get_params() == m.get_params()


@pytest.mark.parametrize("name", FAST)
def test_models_recommend_within_the_users_community(name):
    M, events, cats = planted()
    m = make_model(name, **FAST_PARAMS.get(name, {}))
    assert m.fit(M, **_context(events, cats, M.shape[0])) is m
    rows = np.arange(M.shape[0])
    idx, sc = m.recommend(M, rows, k=3)
    assert (idx >= 0).all()
    assert not np.asarray(M[np.repeat(rows, 3), idx.ravel()]).any(), "recommended an item the user already has"
    assert (np.diff(sc, axis=1) <= 1e-9).all()
    if name != "popularity":
        same_side = (idx >= 12) == (rows[:, None] >= 30)
        assert same_side.mean() > 0.8, f"{name} ignores the communities"
    why = m.explain(M, rows[:4], idx[:4])
    assert all(len(r) == 3 and all("kind" in w for w in r) for r in why)


@pytest.mark.parametrize("name", FAST)
def test_cold_user_gets_the_popularity_fallback(name):
    M, events, cats = planted()
    m = make_model(name, **FAST_PARAMS.get(name, {})).fit(M, **_context(events, cats, M.shape[0]))
    cold = sp.vstack([M, sp.csr_matrix((1, M.shape[1]), dtype=np.float32)]).tocsr()
    idx, _ = m.recommend(cold, np.array([M.shape[0]]), k=5)
    pop = np.asarray(M.sum(axis=0)).ravel()
    assert set(pop[idx[0]]) <= set(np.sort(pop)[-8:])  # drawn from the most used items


@pytest.mark.parametrize("name", FAST)
def test_artifact_round_trip_scores_rebuilt_and_reordered_matrices(name):
    M, events, cats = planted()
    m = make_model(name, **FAST_PARAMS.get(name, {})).fit(M, **_context(events, cats, M.shape[0]))
    again = pickle.loads(pickle.dumps(m))
    order = np.arange(M.shape[0])[::-1]  # publishing rebuilds the matrix: same users, other row order
    a = m.scores(M, np.arange(M.shape[0]))
    b = again.scores(M[order], np.arange(M.shape[0]))[np.argsort(order)]
    assert np.allclose(a, b, atol=1e-5)


def test_ease_matches_its_closed_form_and_has_zero_diagonal():
    m = make_model("ease", l2=2.0).fit(X)
    G = (X.T @ X).toarray() + 2.0 * np.eye(5)
    P = np.linalg.inv(G)
    B = np.eye(5) - P / np.diag(P)
    assert np.allclose(m.weights_, B, atol=1e-5)
    assert np.allclose(np.diag(m.weights_), 0.0)


def test_ease_dropout_penalises_popular_items_more():
    plain = make_model("ease", l2=2.0).fit(X).weights_
    drop = make_model("ease", l2=2.0, dropout=0.5).fit(X).weights_
    assert np.abs(drop).sum() < np.abs(plain).sum()
    with pytest.raises(ValueError, match="dropout"):
        make_model("ease", dropout=1.0).fit(X)


def test_ease_sessions_add_short_range_co_occurrence():
    # user 0 used items 0,1 together and item 2 a month later; user 1 used 0 and 2 together
    M = sp.csr_matrix(np.array([[1, 1, 1], [1, 0, 1]], np.float32))
    events = pd.DataFrame({"row": [0, 0, 0, 1, 1], "col": [0, 1, 2, 0, 2], "ts": [0.0, 10.0, 3e6, 5e6, 5e6 + 10.0]})
    plain = make_model("ease", l2=1.0).fit(M, events=events).weights_
    sess = (
        make_model("ease", l2=1.0, session_weight=1.0, session_window=0, session_gap_seconds=60)
        .fit(M, events=events)
        .weights_
    )
    assert sess[0, 1] > plain[0, 1]  # items 0 and 1 were used within a minute


def test_ease_max_items_ranks_unmodelled_items_last():
    M, _, _ = planted()
    m = make_model("ease", l2=5.0, max_items=6).fit(M)
    s = m.scores(M, np.arange(5))
    modelled = np.zeros(M.shape[1], bool)
    modelled[m.items_] = True
    assert (s[:, modelled].min(axis=1) > s[:, ~modelled].max(axis=1)).all()


def test_content_explains_by_the_shared_tag():
    M, events, cats = planted()
    m = make_model("content", popularity_weight=0.0).fit(M, **_context(events, cats, M.shape[0]))
    idx, _ = m.recommend(M, np.array([0, 59]), k=2)
    why = m.explain(M, np.array([0, 59]), idx)
    assert why[0][0] == {"kind": "tag", "tag": "category=A"}
    assert why[1][0] == {"kind": "tag", "tag": "category=B"}
    with pytest.raises(ValueError, match="item_features"):
        make_model("content").fit(M)


def test_content_can_lift_well_reviewed_items_within_the_users_tags():
    M, events, cats = planted()
    ctx = _context(events, cats, M.shape[0])
    plain = make_model("content", popularity_weight=0.0).fit(M, **ctx)
    sentiment = np.zeros(M.shape[1], dtype=np.float32)
    sentiment[5], sentiment[6] = 1.0, -1.0  # two items of community A, one praised, one panned
    lifted = make_model("content", popularity_weight=0.0, sentiment_weight=0.2).fit(M, item_sentiment=sentiment, **ctx)
    rows = np.arange(30)
    diff = lifted.scores(M, rows) - plain.scores(M, rows)
    assert np.allclose(diff[:, 5], 0.2) and np.allclose(diff[:, 6], -0.2)
    assert np.allclose(np.delete(diff, [5, 6], axis=1), 0.0)
    # the default weight leaves scores alone even when the context has sentiment
    same = make_model("content", popularity_weight=0.0).fit(M, item_sentiment=sentiment, **ctx)
    assert np.allclose(same.scores(M, rows), plain.scores(M, rows))
    with pytest.raises(ValueError, match="item_sentiment has shape"):
        make_model("content").fit(M, item_sentiment=sentiment[:3], **ctx)


def test_user_knn_ignores_the_user_itself():
    m = make_model("user_knn", neighbours=1, shrinkage=0.0, idf=False).fit(X)
    idx, _ = m.recommend(X, np.array([0]), k=1)
    assert idx[0, 0] == 2  # nearest other user (1) has item 2


def test_context_reranker_follows_the_next_category_rule():
    # every user goes from category 0 to category 1; candidates of both categories tie in the base
    n_items = 6
    cats = np.array([0, 0, 0, 1, 1, 1])
    rows, cols, ts = [], [], []
    for u in range(20):
        a, b = u % 3, 3 + (u % 3)
        rows += [u, u]
        cols += [a, b]
        ts += [1000.0 * u, 1000.0 * u + 30]
    M = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(20, n_items))
    events = pd.DataFrame({"row": rows, "col": cols, "ts": ts})
    m = make_model(
        "context", base="popularity", base_params={"use_weights": False}, markov_weight=5.0, recency_weight=0.0
    ).fit(M, events=events, item_categories=cats)
    newcomer = sp.csr_matrix(([1.0], ([0], [1])), shape=(1, n_items), dtype=np.float32)  # just used a cat-0 item
    idx, _ = m.recommend(newcomer, k=3)
    assert cats[idx[0]].tolist() == [1, 1, 1]
    assert m.transitions_[0, 1] > m.transitions_[0, 0]


def test_blend_fits_weights_on_validation_data():
    from ml.recommend.blend import WEIGHT_GRID

    M, events, _ = planted(n_users=80)
    m = make_model(
        "blend",
        components=[{"model": "item_knn", "params": {"shrinkage": 0.0}}, {"model": "popularity"}],
        validation=0.3,
    ).fit(M, events=events)
    assert m.weights_[0] == 1.0 and m.weights_[1] in WEIGHT_GRID
    assert m.validation_ndcg_ is not None and 0.0 <= m.validation_ndcg_ <= 1.0
    fixed = make_model("blend", components=[{"model": "item_knn"}, {"model": "popularity"}], weights=[1.0, 0.0]).fit(M)
    assert np.allclose(
        fixed.scores(M, np.arange(3)), zscore_rows(fixed.models_[0].scores(M, np.arange(3)), M[:3]), atol=1e-6
    )
    with pytest.raises(ValueError, match="weights"):
        make_model("blend", components=[{"model": "item_knn"}], weights=[1.0, 2.0]).fit(M)


def test_row_keys_find_fit_rows_again_and_flag_new_histories():
    keys = row_keys(X)
    perm = np.array([4, 2, 0])
    assert lookup_rows(keys, X[perm], np.arange(3)).tolist() == [4, 2, 0]
    new = sp.csr_matrix(np.array([[1, 0, 0, 0, 1]], np.float32))
    assert lookup_rows(keys, new, np.array([0])).tolist() == [-1]


def test_zscore_ignores_seen_items():
    s = np.array([[10.0, 1.0, 2.0, 3.0]])
    z = zscore_rows(s, sp.csr_matrix(np.array([[1, 0, 0, 0]])))
    assert z[0, 1:].mean() == pytest.approx(0.0, abs=1e-9)
    assert z[0, 1:].std() == pytest.approx(1.0, rel=1e-6)


def test_interaction_data_projects_onto_given_ids():
    df = pd.DataFrame({"user_id": ["u1", "u1", "u2"], "item_id": ["a", "a", "z"], "weight": [1.0, 2.0, 1.0]})
    d = InteractionData.from_frame(df, item_ids=np.array(["a", "b"]))
    assert d.matrix.shape == (2, 2)
    assert d.matrix[d.user_index["u1"], 0] == 3.0
    assert d.matrix.sum() == 3.0


def test_scoring_rejects_a_matrix_with_other_items():
    m = ItemKNN().fit(X)
    with pytest.raises(ValueError, match="item columns"):
        m.recommend(sp.csr_matrix((2, 7), dtype=np.float32))


def test_batched_explanations_with_sparse_weights_equal_the_per_user_loop():
    """Sparse item-item weights are explained many users at a time; the answers (including ties,
    users without history and empty slots) equal the per-user loop used for dense weights."""
    from ml.recommend.base import explain_by_item_weights

    rng = np.random.default_rng(5)
    n_users, n_items = 300, 40
    X = sp.random(
        n_users, n_items, density=0.08, random_state=1, format="csr", data_rvs=lambda n: rng.integers(1, 3, n)
    )
    X = sp.csr_matrix(X.toarray())  # canonical: sorted indices, some users with no history
    W = sp.random(n_items, n_items, density=0.2, random_state=2, format="csr", data_rvs=lambda n: rng.integers(1, 4, n))
    rows = np.arange(n_users)
    items = rng.integers(0, n_items, size=(n_users, 7))
    items[rng.random(items.shape) < 0.1] = -1
    sparse = explain_by_item_weights(X, rows, items, W)
    dense = explain_by_item_weights(X, rows, items, W.toarray())
    assert sparse == dense
    kinds = {d["kind"] for row in sparse for d in row}
    assert kinds == {"similar_item", "popular", "none"}


def test_sparse_explanations_in_many_chunks_equal_one_chunk():
    """``explain_sources`` splits the rows into chunks: with many small chunks (each writes its
    own rows) the sources equal one chunk's and the per-user loop's (-1 for a popular or empty
    slot)."""
    from ml.recommend.base import explain_by_item_weights, explain_sources

    rng = np.random.default_rng(7)
    n_users, n_items = 500, 60
    X = sp.csr_matrix(
        sp.random(n_users, n_items, density=0.1, random_state=3, data_rvs=lambda n: rng.integers(1, 4, n)).toarray()
    )
    W = sp.random(n_items, n_items, density=0.2, random_state=4, format="csr", data_rvs=lambda n: rng.integers(1, 5, n))
    rows = rng.permutation(n_users)
    items = rng.integers(0, n_items, size=(n_users, 5))
    items[rng.random(items.shape) < 0.1] = -1
    many = explain_sources(X, rows, items, W, chunk=7)  # 72 chunks
    one = explain_sources(X, rows, items, W, chunk=n_users)
    np.testing.assert_array_equal(many, one)
    loop = explain_by_item_weights(X, rows, items, W.toarray())
    want = np.array([[d.get("item", -1) for d in row] for row in loop])
    np.testing.assert_array_equal(many, want)
    assert (many >= 0).mean() > 0.3


@pytest.mark.parametrize("max_items", [None, 15])
def test_ease_explanations_follow_the_weight_rule_user_by_user(max_items):
    from ml.recommend.base import explain_by_item_weights

    M, _, _ = planted(n_users=200, n_items=40, seed=5)
    model = make_model("ease", l2=50.0, max_items=max_items).fit(M)
    rows = np.arange(M.shape[0])
    idx, _ = model.recommend(M, k=5)
    # the reference: every item's weight row (zeros outside the modelled items), one user at a time
    full = np.zeros((M.shape[1], M.shape[1]), dtype=np.float32)
    full[np.ix_(model.items_, model.items_)] = model.weights_
    want = explain_by_item_weights(M, rows, idx, full)
    got = model.explain(M, rows, idx)
    assert got == want
    kinds = {r["kind"] for user in got for r in user}
    assert "similar_item" in kinds  # (the rule is exercised, not only its fallbacks)
    if max_items:
        assert "popular" in kinds  # items outside the modelled ones have no source
