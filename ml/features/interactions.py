"""Reading the interaction marts into frames the models use."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from ml.warehouse import Warehouse


def load_interaction_events(wh: Warehouse) -> pd.DataFrame:
    df = wh.query("select user_id, item_id, event_type, event_at, weight from marts.interaction_events")
    df["event_at"] = pd.to_datetime(df["event_at"])
    return df


def decayed(df: pd.DataFrame, as_of: pd.Timestamp, half_life_days: float) -> pd.DataFrame:
    """Multiply each event's weight by 0.5^(age_days / half_life) and aggregate per user x item."""
    age = (as_of - df["event_at"]).dt.total_seconds() / 86400.0
    d = df.assign(weight=df["weight"] * np.power(0.5, age.clip(lower=0) / half_life_days))
    return d.groupby(["user_id", "item_id"], as_index=False)["weight"].sum()


def snapshot_id(df: pd.DataFrame, cutoff: pd.Timestamp) -> str:
    h = hashlib.sha1(f"{len(df)}|{df['event_at'].max()}|{df['weight'].sum():.6f}".encode()).hexdigest()[:8]
    return f"snap-{cutoff:%Y%m%dT%H%M}-{h}"
