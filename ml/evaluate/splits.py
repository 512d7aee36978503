"""Train/test splits over an event or rating frame (columns user_id, item_id, a time column),
and a per-user holdout on a sparse matrix (for validation carved from training data).

* :func:`random_split` — per-user random ratio, seeded (the Microsoft Recommenders protocol:
  every user keeps ``ratio`` of their rows, rounded, at least one, in train).
* :func:`temporal_split` — one global cut-off time (last ``holdout_days``, or the time that
  leaves ``test_share`` of the rows after it).
* :func:`leave_last_out` — each user's newest row is the test row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp


def temporal_split(
    df: pd.DataFrame, holdout_days: float | None = 7.0, time_col: str = "event_at", test_share: float | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    """Global time split: rows after the cut-off form the test set. The cut-off is
    ``holdout_days`` before the newest row, or (when ``test_share`` is given) the time quantile
    that leaves that share of rows after it. Returns (train, test, cutoff)."""
    t = df[time_col]
    if not (pd.api.types.is_datetime64_any_dtype(t) or pd.api.types.is_numeric_dtype(t)):
        t = pd.to_datetime(t)
    if test_share is not None:
        if not 0.0 < test_share < 1.0:
            raise ValueError(f"test_share must be in (0, 1), got {test_share}")
        cutoff = t.quantile(1.0 - test_share, interpolation="lower")
    else:
        if holdout_days is None or holdout_days <= 0:
            raise ValueError("temporal_split needs holdout_days > 0 or a test_share")
        span = pd.Timedelta(days=holdout_days)
        cutoff = t.max() - (span.total_seconds() if pd.api.types.is_numeric_dtype(t) else span)
    return df[t <= cutoff].copy(), df[t > cutoff].copy(), cutoff


def random_split(
    df: pd.DataFrame, ratio: float = 0.75, seed: int = 42, user_col: str = "user_id"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-user random split: each user's rows go ``ratio`` to train, the rest to test
    (rounded per user, at least one row kept in train)."""
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"ratio must be in (0, 1), got {ratio}")
    rng = np.random.default_rng(seed)
    key = rng.random(len(df))
    d = df.assign(_k=key)
    d["_rank"] = d.groupby(user_col)["_k"].rank(method="first")
    d["_n"] = d.groupby(user_col)["_k"].transform("size")
    n_train = np.maximum(1, np.round(d["_n"] * ratio))
    train_mask = d["_rank"] <= n_train
    cols = list(df.columns)
    return d.loc[train_mask, cols].copy(), d.loc[~train_mask, cols].copy()


def leave_last_out(
    df: pd.DataFrame, time_col: str = "event_at", user_col: str = "user_id"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each user's latest row is the test set (users with one row stay in train only)."""
    d = df.sort_values([user_col, time_col], kind="stable")
    last = d.groupby(user_col).cumcount(ascending=False) == 0
    multi = d.groupby(user_col)[user_col].transform("size") > 1
    test_mask = last & multi
    return d[~test_mask].copy(), d[test_mask].copy()


def holdout_matrix(
    X: sp.csr_matrix, ratio: float, seed: int | np.random.Generator = 42
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Split every row's non-zeros of an (n_users, n_items) matrix into (kept, held out),
    about ``ratio`` held out per row; one random entry per row is always kept, so no row is
    emptied. ``kept + held_out == X``."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"ratio must be in [0, 1), got {ratio}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    X = sp.csr_matrix(X, copy=True)
    X.sort_indices()
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    held = rng.random(X.nnz) < ratio
    if X.nnz:
        protect_key = rng.random(X.nnz)
        nonempty = np.diff(X.indptr) > 0
        row_min = np.full(X.shape[0], np.inf)
        row_min[nonempty] = np.minimum.reduceat(protect_key, X.indptr[:-1][nonempty])
        held &= protect_key != row_min[rows]
    kept = sp.csr_matrix((np.where(held, 0, X.data), X.indices.copy(), X.indptr.copy()), shape=X.shape)
    out = sp.csr_matrix((np.where(held, X.data, 0), X.indices.copy(), X.indptr.copy()), shape=X.shape)
    kept.eliminate_zeros()
    out.eliminate_zeros()
    return kept, out
