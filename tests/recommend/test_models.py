import numpy as np
import pytest
import scipy.sparse as sp

from ml.recommend import InteractionData, ItemKNN, Popularity, make_model
from ml.recommend.base import top_k

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


def test_top_k_sorted_and_skips_minus_inf():
    s = np.array([[0.1, 0.9, -np.inf, 0.5]])
    idx, sc = top_k(s, 4)
    assert idx.tolist() == [[1, 3, 0, -1]]
    assert np.all(np.diff(sc[0][:3]) <= 0)


def test_popularity_ranks_by_usage_and_excludes_seen():
    m = Popularity(use_weights=False).fit(X)
    idx, _ = m.recommend(X, np.array([3]), k=2)
    assert idx[0].tolist() == [1, 0]  # item 1 (3 users), then item 0 (2 users); 3 and 4 seen


def test_item_knn_recommends_co_consumed_item_and_explains_it():
    m = ItemKNN(neighbours=10, shrinkage=0.0, bm25=False).fit(X)
    idx, _sc = m.recommend(X, np.array([0, 4]), k=1)
    assert idx[0, 0] == 2  # user 0 has {0,1}; item 2 co-occurs with 1
    assert idx[1, 0] == 4  # user 4 has {3}; item 4 co-occurs with 3
    why = m.explain(X, np.array([4]), idx[1:])
    assert why[0][0] == {"kind": "similar_item", "item": 3}


def test_scikit_style_params_and_factory():
    m = make_model("item_knn", neighbours=5)
    assert m.get_params() == {"neighbours": 5, "shrinkage": 10.0, "bm25": True}
    with pytest.raises(KeyError):
        make_model("nope")


def test_interaction_data_projects_onto_given_ids():
    import pandas as pd

    df = pd.DataFrame({"user_id": ["u1", "u1", "u2"], "item_id": ["a", "a", "z"], "weight": [1.0, 2.0, 1.0]})
    d = InteractionData.from_frame(df, item_ids=np.array(["a", "b"]))
    assert d.matrix.shape == (2, 2)
    assert d.matrix[d.user_index["u1"], 0] == 3.0
    assert d.matrix.sum() == 3.0
