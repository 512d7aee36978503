"""Reading the interaction marts into frames the models use."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml.warehouse import Warehouse, where_clause

log = logging.getLogger(__name__)


def load_interaction_events(wh: Warehouse) -> pd.DataFrame:
    df = wh.read_table("marts.interaction_events", columns=("user_id", "item_id", "event_type", "event_at", "weight"))
    df["event_at"] = pd.to_datetime(df["event_at"])
    return df


def decayed(df: pd.DataFrame, as_of: pd.Timestamp, half_life_days: float) -> pd.DataFrame:
    """Multiply each event's weight by 0.5^(age_days / half_life) and aggregate per user x item."""
    age = (as_of - df["event_at"]).dt.total_seconds() / 86400.0
    d = df.assign(weight=df["weight"] * np.power(0.5, age.clip(lower=0) / half_life_days))
    return d.groupby(["user_id", "item_id"], as_index=False)["weight"].sum()


# the columns of a scoring read (``DecayedInteractions.frame``), from the mart or aggregated
PAIR_COLUMNS = {"user_id": "text", "item_id": "text", "weight": "double", "n_events": "bigint", "last_at": "timestamp"}


@dataclass
class DecayedInteractions:
    """What scoring needs from ``marts.interaction_events``, aggregated by the warehouse.

    ``frame``: user_id, item_id, weight (the :func:`decayed` weights), n_events and last_at
    (the pair's number of events and its newest, as ``marts.interactions`` has them);
    ``as_of``: the newest event; ``users``: every user with an event, sorted; ``excluded``:
    user_id, item_id of the pairs with an event of an excluded type (purchases), ``weight``
    their number of such events; ``popularity``: per item_id, the sum of every user's weight
    (what ``Popularity`` fits on the whole shop's decayed matrix), the whole shop's even when
    ``frame`` holds some users only."""

    frame: pd.DataFrame
    as_of: pd.Timestamp
    users: np.ndarray
    excluded: pd.DataFrame
    popularity: pd.Series


def newest_event(wh: Warehouse, con: Any = None) -> pd.Timestamp:
    """The newest event of ``marts.interaction_events`` (``max(event_at)``): the horizon that
    scoring decays to, the contexts' and the segments' ``as_of``; NaT when there are none."""
    return pd.Timestamp(wh.query("select max(event_at) as t from marts.interaction_events", None, con)["t"].iloc[0])


def load_decayed_interactions(
    wh: Warehouse,
    half_life_days: float,
    exclude_event_types: tuple[str, ...] = (),
    users_where: str | None = None,
    as_of: Any = None,
) -> DecayedInteractions:
    """:func:`decayed` of every event, computed in the warehouse: one row per user x item comes
    back instead of one per event (5.7M instead of 10.8M rows on the large shop, with no
    timestamp or event-type column to convert). The weights agree with :func:`decayed` up to
    float64 rounding (the warehouse sums in another order); on the large shop the float32
    interaction matrices built from either are identical.

    When dbt's ``marts.interactions`` holds these very weights (built from the same events,
    newest event as its horizon, with this half-life) and the excluded pairs are purchases (its
    ``n_purchases``), its rows are read as they are: no aggregation of every event at scoring
    time (on PostgreSQL, large shop: 3.4 s instead of 19.5 s here); otherwise the events are
    aggregated here. ``users_where``: a SQL condition on ``user_id`` keeping only some users'
    rows (a publish shard's, ``ml.publish.shards.Shard.where``), applied by the warehouse.
    ``as_of``: the newest event (``max(event_at)`` of the events) when the caller has read it."""
    with wh.connect(read_only=True) as con:
        pairs = _decayed_pairs(wh, con, half_life_days, exclude_event_types, as_of)
        frame = wh.query_typed(pairs.sql(users_where), pairs.columns, pairs.params, con)
        if pairs.from_mart:
            bought = frame["n_purchases"].to_numpy() > 0 if exclude_event_types else np.zeros(len(frame), bool)
            # (column operations, not object arrays: the text columns stay Arrow-backed)
            excluded = frame.loc[bought, ["user_id", "item_id", "n_purchases"]].rename(
                columns={"n_purchases": "weight"}
            )
            excluded = excluded.reset_index(drop=True).astype({"weight": np.float64})
            frame = frame.drop(columns="n_purchases")
        else:
            excluded = load_excluded_pairs(wh, exclude_event_types, con, users_where)
        pop = wh.query_typed(
            f"select item_id, sum(weight) as weight from ({pairs.sql(None)}) p group by item_id",
            {"item_id": "text", "weight": "double"},
            pairs.params,
            con,
        )
    frame["weight"] = frame["weight"].astype(np.float64)
    # every user with an event has a user x item row
    users = np.sort(np.asarray(frame["user_id"].unique(), dtype=object))
    popularity = pd.Series(pop["weight"].to_numpy(np.float64), index=pop["item_id"].astype(str), dtype=np.float64)
    return DecayedInteractions(frame, pairs.as_of, users, excluded, popularity)


@dataclass
class _Pairs:
    """The query of the decayed user x item weights, and where they come from."""

    template: str  # (with ``{cond}`` where a condition on the users goes)
    params: list[Any]
    columns: dict[str, str]
    from_mart: bool
    as_of: pd.Timestamp

    def sql(self, users_where: str | None) -> str:
        """The query, for the users that match ``users_where`` (every user for None)."""
        return self.template.format(cond=where_clause(users_where))


def _decayed_pairs(
    wh: Warehouse, con: Any, half_life_days: float, exclude_event_types: tuple[str, ...], as_of: Any = None
) -> _Pairs:
    """Read ``marts.interactions`` when it holds the weights (:func:`mart_mismatch`), else
    aggregate ``marts.interaction_events`` (``as_of``: their newest event, read when None)."""
    as_of = newest_event(wh, con) if as_of is None else pd.Timestamp(as_of)
    why_not = mart_mismatch(wh, con, half_life_days, exclude_event_types, as_of)
    if why_not is None:
        return _Pairs(
            "select user_id, item_id, decayed_weight as weight, n_events, last_at, n_purchases "
            "from marts.interactions{cond}",
            [],
            {**PAIR_COLUMNS, "n_purchases": "bigint"},
            True,
            as_of,
        )
    log.info("scoring aggregates marts.interaction_events: %s", why_not)
    stamp = as_of.tz_localize(None) if as_of.tzinfo else as_of
    if pd.isna(stamp):  # no events: nothing to age (and no timestamp to bind)
        stamp = pd.Timestamp(0)
    return _Pairs(
        "select user_id, item_id, sum(weight * power(0.5, greatest(cast(extract(epoch from "
        "(cast(? as timestamp) - event_at)) as double precision), 0) / 86400.0 / ?)) as weight, "
        "count(*) as n_events, max(event_at) as last_at from marts.interaction_events{cond} group by user_id, item_id",
        [stamp.to_pydatetime(), float(half_life_days)],
        PAIR_COLUMNS,
        False,
        as_of,
    )


MART_COLUMNS = ("user_id", "item_id", "decayed_weight", "n_events", "n_purchases", "last_at", "decay_half_life_days")


def mart_mismatch(
    wh: Warehouse, con: Any, half_life_days: float, exclude_event_types: tuple[str, ...], as_of: Any
) -> str | None:
    """Why ``marts.interactions`` cannot stand for the decayed weights of
    ``marts.interaction_events`` at ``as_of`` with ``half_life_days`` (and the pairs of
    ``exclude_event_types``); None when it can."""
    if set(exclude_event_types) - {"purchase"}:
        return f"excluded event types {sorted(exclude_event_types)} are not only purchases"
    cols = wh.table_columns(con, "marts", "interactions")
    if not cols:
        return "marts.interactions is not built"
    missing = sorted(set(MART_COLUMNS) - set(cols))
    if missing:
        return f"marts.interactions lacks {missing}"
    row = wh.query(
        "select min(decay_half_life_days) as lo, max(decay_half_life_days) as hi, max(last_at) as newest, "
        "count(*) as n from marts.interactions",
        None,
        con,
    ).iloc[0]
    if int(row["n"]) == 0:
        return "marts.interactions is empty"
    if not (float(row["lo"]) == float(row["hi"]) == float(half_life_days)):
        return f"marts.interactions decays with a half-life of {row['lo']} days, not {half_life_days}"
    if pd.isna(as_of) or pd.Timestamp(row["newest"]) != pd.Timestamp(as_of):
        return f"marts.interactions ends at {row['newest']}, the events at {as_of}: it is stale"
    return None


def load_excluded_pairs(
    wh: Warehouse, event_types: tuple[str, ...], con: Any = None, users_where: str | None = None
) -> pd.DataFrame:
    """user_id, item_id, weight (their number of such events) of every pair with an event of
    ``event_types`` (purchases: items a user must not be recommended); empty for no types.
    ``users_where``: only the users that match this SQL condition on ``user_id``."""
    if not event_types:
        return pd.DataFrame(
            {"user_id": pd.Series(dtype=object), "item_id": pd.Series(dtype=object), "weight": pd.Series(dtype=float)}
        )
    marks = ", ".join("?" for _ in event_types)
    df = wh.query_typed(
        "select user_id, item_id, count(*) as weight from marts.interaction_events"
        f"{where_clause(f'event_type in ({marks})', users_where)} group by user_id, item_id",
        {"user_id": "text", "item_id": "text", "weight": "bigint"},
        list(event_types),
        con,
    )
    df["weight"] = df["weight"].astype(np.float64)
    return df


def snapshot_id(df: pd.DataFrame, cutoff: pd.Timestamp) -> str:
    h = hashlib.sha1(f"{len(df)}|{df['event_at'].max()}|{df['weight'].sum():.6f}".encode()).hexdigest()[:8]
    return f"snap-{cutoff:%Y%m%dT%H%M}-{h}"
