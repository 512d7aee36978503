"""The pre-publish gate: a recommendation table must be complete and sane before it is served.

``check_recommendations`` derives the flags the ``prepublish`` suite checks (known item, already
bought, finite score, k distinct items per active user) and runs the suite with Great
Expectations; a failure raises :class:`GateFailure` and the table is not published, so the last
published version stays served.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.publish.shards import Shard
from ml.quality import store
from ml.quality.gates import enforce, gate_params
from ml.quality.runner import GateFailure, GateResult, run_gate
from ml.warehouse import Warehouse, where_clause

__all__ = ["GateFailure", "check_recommendations", "prepare", "recommendation_frames"]

GATE = "prepublish"


def recommendation_frames(
    df: pd.DataFrame, wh: Warehouse, exclude_event_types: tuple[str, ...] = ("purchase",), shard: Shard | None = None
) -> dict[str, pd.DataFrame]:
    """The suite's two frames: ``recommendations`` (one row per slot, with flags) and
    ``active_users`` (one row per known user: in ``marts.user_features`` or with interaction
    events; has recommendations, distinct items; only ``shard``'s users when given). Users
    without history get cold-start slates, so every known user must have k items."""
    from ml.explore.store import read_known_users

    shard = shard or Shard()
    mine = shard.where(wh)  # (the shard's users, selected by the warehouse)
    with wh.connect(read_only=True) as con:
        # users with events hashed here directly, not through the users table the shard's reads
        # go through: a user missing from it is then a user without recommendations
        # (a materialised CTE: else PostgreSQL pushes the hash below the distinct, onto every event)
        with_events = wh.query(
            "with e as materialized (select distinct user_id from marts.interaction_events) select user_id from e"
            + where_clause(None if shard.whole else shard.hashed(wh)),
            None,
            con,
        )["user_id"]
        known = sorted(set(with_events.astype(str)).union(read_known_users(wh, con, mine)))
        active = pd.DataFrame({"user_id": pd.Series(known, dtype=with_events.dtype)})
        items = set(wh.query("select item_id from marts.item_features", None, con)["item_id"])
        types = list(exclude_event_types)
        if types:
            marks = ", ".join("?" for _ in types)
            excluded = wh.query(
                "select distinct user_id, item_id from marts.interaction_events"
                + where_clause(f"event_type in ({marks})", mine),
                types,
                con,
            )
        else:
            excluded = pd.DataFrame({"user_id": pd.Series(dtype=str), "item_id": pd.Series(dtype=str)})
    recs = df[["user_id", "item_id", "propensity", "score"]].copy()
    recs["is_known_item"] = recs["item_id"].isin(items)
    flagged = recs.merge(excluded.assign(is_excluded_item=True), on=["user_id", "item_id"], how="left")
    recs["is_excluded_item"] = flagged["is_excluded_item"].fillna(False).astype(bool).to_numpy()
    recs["score_is_finite"] = np.isfinite(pd.to_numeric(recs["score"], errors="coerce").astype(float))
    per_user = recs.groupby("user_id")["item_id"].nunique().rename("n_distinct_items")
    users = active.merge(per_user, left_on="user_id", right_index=True, how="left")
    users["has_recommendations"] = users["n_distinct_items"].notna()
    users["n_distinct_items"] = users["n_distinct_items"].fillna(0).astype("int64")
    return {"recommendations": recs, "active_users": users}


def prepare() -> None:
    """Import Great Expectations ahead of the gate (a few seconds of imports), e.g. on a thread
    that would otherwise wait; the gate itself then starts at once."""
    from ml.quality.runner import import_gx

    import_gx()


def check_recommendations(
    df: pd.DataFrame,
    wh: Warehouse,
    k: int,
    exclude_event_types: tuple[str, ...] = ("purchase",),
    shard: Shard | None = None,
) -> GateResult:
    """Raise :class:`GateFailure` unless every known user (of ``shard``, when given: the frame is
    that shard's part of a publish run) has k distinct known items, none excluded (already
    bought), propensities in (0, 1] and finite scores. Records the run in ``quality.gate_runs``
    (run id: the frame's ``run_id`` column, else ``manual``; ``<run id>.<shard name>`` for a
    shard of several)."""
    run_id = str(df["run_id"].iloc[0]) if "run_id" in df.columns and len(df) else "manual"
    if shard is not None and not shard.whole:
        run_id = f"{run_id}.{shard.name}"
    frames = recommendation_frames(df, wh, exclude_event_types, shard)
    result = run_gate(GATE, frames, run_id, gate_params(k=int(k)), reference={})
    store.record(wh, result)
    return enforce(result)
