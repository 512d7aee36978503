"""The champion's reasons, computed for the shown rows only (deferred) or for every candidate
(eager), give the same text for the same (user, item)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from ml.recommend import ItemKNN
from ml.recommend.explain import ChampionReasons

pytestmark = pytest.mark.unit


def _reasons() -> tuple[ChampionReasons, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    n_users, n_items = 60, 25
    X = sp.csr_matrix((rng.random((n_users, n_items)) < 0.15) * rng.integers(1, 4, (n_users, n_items)), dtype=float)
    model = ItemKNN(neighbours=8).fit(X)
    idx, _ = model.recommend(X, k=6)
    filled = np.zeros(idx.shape, dtype=bool)
    filled[::7, -1] = True  # slots the popularity fill wrote: always "popular"
    users = np.array([f"u{u:03d}" for u in range(n_users)], dtype=object)
    items = np.array([f"i{i:03d}" for i in range(n_items)], dtype=object)
    feats = pd.DataFrame({"item_id": items, "title": [f"T{i}" for i in range(n_items)], "category_path": "A > B"})
    return ChampionReasons(model, X, users, items, feats, idx, filled), idx, users, items


def test_deferred_reasons_equal_eager_ones_on_non_exploration_candidate_rows():
    reasons, idx, users, items = _reasons()
    u_ix, r_ix = np.nonzero(idx >= 0)
    eager, tags = reasons.for_slots(u_ix, idx[u_ix, r_ix])
    assert {t.split(":")[0] for t in tags} == {"item", "popular"}
    assert all(r.startswith("popular in") for r in eager[(u_ix % 7 == 0) & (r_ix == idx.shape[1] - 1)])
    slates = pd.DataFrame(
        {
            "user_id": users[u_ix],
            "item_id": items[idx[u_ix, r_ix]],
            "reason": "because you like x",
            "is_exploration": (r_ix % 3 == 1),
        }
    )
    # a row whose item is not among the user's candidates keeps the policy's reason
    other = pd.DataFrame(
        {"user_id": ["u000"], "item_id": ["not-a-candidate"], "reason": ["kept"], "is_exploration": [False]}
    )
    out = reasons.fill(pd.concat([slates, other], ignore_index=True))
    shown = out.iloc[: len(slates)]
    expl = slates["is_exploration"].to_numpy()
    assert (shown["reason"].to_numpy()[~expl] == eager[~expl]).all()
    assert (shown["reason"][expl] == "because you like x").all()
    assert out["reason"].iloc[-1] == "kept"
