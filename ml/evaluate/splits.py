"""Train/test splits over an event or rating frame (columns user_id, item_id, timestamp)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def temporal_split(
    df: pd.DataFrame, holdout_days: float = 7.0, time_col: str = "event_at"
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    """Global time split: events in the last ``holdout_days`` before the newest event form
    the test set. Returns (train, test, cutoff)."""
    t = pd.to_datetime(df[time_col])
    cutoff = t.max() - pd.Timedelta(days=holdout_days)
    return df[t <= cutoff].copy(), df[t > cutoff].copy(), cutoff


def random_split(
    df: pd.DataFrame, ratio: float = 0.75, seed: int = 42, user_col: str = "user_id"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-user random split: each user's rows go ``ratio`` to train, the rest to test
    (rounded per user, at least one row kept in train)."""
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
