"""Reading the interaction marts into frames the models use."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

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


@dataclass
class DecayedInteractions:
    """What scoring needs from ``marts.interaction_events``, aggregated by the warehouse.

    ``frame``: user_id, item_id, weight (the :func:`decayed` weights); ``as_of``: the newest
    event; ``users``: every user with an event, sorted; ``excluded``: user_id, item_id of the
    pairs with an event of an excluded type (purchases), ``weight`` their number of such events."""

    frame: pd.DataFrame
    as_of: pd.Timestamp
    users: np.ndarray
    excluded: pd.DataFrame


def load_decayed_interactions(
    wh: Warehouse, half_life_days: float, exclude_event_types: tuple[str, ...] = ()
) -> DecayedInteractions:
    """:func:`decayed` of every event, computed in the warehouse: one row per user x item comes
    back instead of one per event (5.7M instead of 10.8M rows on the large shop, with no
    timestamp or event-type column to convert). The weights agree with :func:`decayed` up to
    float64 rounding (the warehouse sums in another order); on the large shop the float32
    interaction matrices built from either are identical."""
    with wh.connect(read_only=True) as con:
        as_of = wh.query("select max(event_at) as t from marts.interaction_events", None, con)["t"].iloc[0]
        as_of = pd.Timestamp(as_of)
        stamp = as_of.tz_localize(None) if as_of.tzinfo else as_of
        if pd.isna(stamp):  # no events: nothing to age (and no timestamp to bind)
            stamp = pd.Timestamp(0)
        frame = wh.query_typed(
            "select user_id, item_id, sum(weight * power(0.5, greatest(cast(extract(epoch from "
            "(cast(? as timestamp) - event_at)) as double precision), 0) / 86400.0 / ?)) as weight "
            "from marts.interaction_events group by user_id, item_id",
            {"user_id": "text", "item_id": "text", "weight": "double"},
            [stamp.to_pydatetime(), float(half_life_days)],
            con,
        )
        users = wh.query_typed("select distinct user_id from marts.interaction_events", {"user_id": "text"}, None, con)[
            "user_id"
        ]
        excluded = load_excluded_pairs(wh, exclude_event_types, con)
    frame["weight"] = frame["weight"].astype(np.float64)
    return DecayedInteractions(frame, as_of, np.sort(users.to_numpy(dtype=object)), excluded)


def load_excluded_pairs(wh: Warehouse, event_types: tuple[str, ...], con: Any = None) -> pd.DataFrame:
    """user_id, item_id, weight (their number of such events) of every pair with an event of
    ``event_types`` (purchases: items a user must not be recommended); empty for no types."""
    if not event_types:
        return pd.DataFrame(
            {"user_id": pd.Series(dtype=object), "item_id": pd.Series(dtype=object), "weight": pd.Series(dtype=float)}
        )
    marks = ", ".join("?" for _ in event_types)
    df = wh.query_typed(
        "select user_id, item_id, count(*) as weight from marts.interaction_events "
        f"where event_type in ({marks}) group by user_id, item_id",
        {"user_id": "text", "item_id": "text", "weight": "bigint"},
        list(event_types),
        con,
    )
    df["weight"] = df["weight"].astype(np.float64)
    return df


def snapshot_id(df: pd.DataFrame, cutoff: pd.Timestamp) -> str:
    h = hashlib.sha1(f"{len(df)}|{df['event_at'].max()}|{df['weight'].sum():.6f}".encode()).hexdigest()[:8]
    return f"snap-{cutoff:%Y%m%dT%H%M}-{h}"
