import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from ml.evaluate import leave_last_out, random_split, temporal_split
from ml.evaluate.splits import holdout_matrix

pytestmark = pytest.mark.unit


@pytest.fixture()
def events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": ["a"] * 4 + ["b"] * 2,
            "item_id": [1, 2, 3, 4, 1, 2],
            "event_at": pd.to_datetime(
                ["2026-01-01", "2026-01-02", "2026-01-09", "2026-01-10", "2026-01-03", "2026-01-10"]
            ),
        }
    )


def test_temporal_split_by_days_and_by_share(events):
    tr, te, cutoff = temporal_split(events, holdout_days=2)
    assert (te["event_at"] > cutoff).all() and (tr["event_at"] <= cutoff).all() and len(tr) + len(te) == 6
    tr, te, cutoff = temporal_split(events, test_share=0.5)
    assert len(te) == 3 and te["event_at"].min() > tr["event_at"].max()
    secs = events.assign(ts=(events["event_at"] - pd.Timestamp(0)).dt.total_seconds())
    _, te2, _ = temporal_split(secs, holdout_days=2, time_col="ts")
    assert len(te2) == len(temporal_split(events, holdout_days=2)[1])
    with pytest.raises(ValueError, match="test_share"):
        temporal_split(events, test_share=1.5)


def test_random_split_is_seeded_per_user_and_keeps_every_user_in_train():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"user_id": np.repeat(np.arange(50), 20), "item_id": rng.integers(0, 1000, 1000)})
    tr, te = random_split(df, ratio=0.75, seed=1)
    assert len(tr) + len(te) == len(df)
    assert (tr.groupby("user_id").size() == 15).all() and (te.groupby("user_id").size() == 5).all()
    tr2, _ = random_split(df, ratio=0.75, seed=1)
    assert tr.equals(tr2)
    tr3, _ = random_split(df, ratio=0.75, seed=2)
    assert not tr.index.equals(tr3.index)
    one = pd.DataFrame({"user_id": ["x"], "item_id": [1]})
    assert len(random_split(one, 0.5)[0]) == 1
    with pytest.raises(ValueError, match="ratio"):
        random_split(df, ratio=1.0)


def test_leave_last_out(events):
    tr, te = leave_last_out(events)
    assert sorted(te["item_id"]) == [2, 4]
    assert len(tr) == 4


def test_holdout_matrix_partitions_every_row_and_never_empties_one():
    rng = np.random.default_rng(0)
    X = sp.random(40, 30, density=0.2, format="csr", random_state=rng, dtype=np.float32)
    X.data[:] = 1.0
    kept, held = holdout_matrix(X, 0.5, seed=3)
    assert np.allclose((kept + held).toarray(), X.toarray())
    assert kept.multiply(held).nnz == 0
    nonempty = np.diff(X.indptr) > 0
    assert (np.diff(kept.indptr)[nonempty] > 0).all()
    assert 0.3 < held.nnz / X.nnz < 0.6
    again, _ = holdout_matrix(X, 0.5, seed=3)
    assert (again != kept).nnz == 0
