"""The Keras two-tower model: real TensorFlow training with a validation split and early
stopping, then NumPy-only scoring (pickled artifacts never need TensorFlow)."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp

from ml.recommend import make_model

pytestmark = [pytest.mark.unit, pytest.mark.slow]


def communities(n_users: int = 120, n_items: int = 30, seed: int = 1) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    for u in range(n_users):
        lo = 0 if u < n_users // 2 else n_items // 2
        for i in rng.choice(n_items // 2, size=6, replace=False):
            rows.append(u)
            cols.append(lo + int(i))
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))


def test_two_tower_learns_communities_with_early_stopping_and_features():
    M = communities()
    n_users, n_items = M.shape
    item_features = sp.csr_matrix(np.eye(2, dtype=np.float32)[(np.arange(n_items) >= n_items // 2).astype(int)])
    user_features = np.eye(2, dtype=np.float32)[(np.arange(n_users) >= n_users // 2).astype(int)]
    m = make_model(
        "two_tower", dim=8, hidden=32, epochs=60, patience=2, batch_size=32, learning_rate=0.01, validation_users=0.2
    ).fit(M, item_features=item_features, user_features=user_features)
    assert "val_loss" in m.history_ and len(m.history_["val_loss"]) == m.epochs_trained_
    assert m.epochs_trained_ < 60, "early stopping never triggered"
    idx, _ = m.recommend(M, np.arange(n_users), k=3)
    same_side = (idx >= n_items // 2) == (np.arange(n_users)[:, None] >= n_users // 2)
    assert same_side.mean() > 0.9
    restored = pickle.loads(pickle.dumps(m))
    assert np.allclose(restored.scores(M, np.arange(5)), m.scores(M, np.arange(5)), atol=1e-5)
    assert m.user_vectors(M, np.arange(3)).shape == (3, 8)
    with pytest.raises(ValueError, match="item_features"):
        make_model("two_tower", epochs=1).fit(M, item_features=sp.csr_matrix((3, 2), dtype=np.float32))
