"""The pre-publish gate: a recommendation table must be complete and sane before it is served."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml.warehouse import Warehouse


@dataclass
class GateFailure(Exception):
    gate: str
    failures: list[dict[str, object]] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"gate {self.gate!r} failed:"]
        for f in self.failures:
            lines.append(f"  - {f['expectation']} on {f['column']}: {f['failing']} failing rows, e.g. {f['examples']}")
        return "\n".join(lines)


def check_recommendations(
    df: pd.DataFrame, wh: Warehouse, k: int, exclude_event_types: tuple[str, ...] = ("purchase",)
) -> None:
    """Raise :class:`GateFailure` unless every active user has k distinct known items, none
    excluded (already bought), propensities in (0, 1] and finite scores."""
    fails: list[dict[str, object]] = []

    def add(expectation: str, column: str, bad: pd.DataFrame) -> None:
        if len(bad):
            fails.append(
                {
                    "expectation": expectation,
                    "column": column,
                    "failing": len(bad),
                    "examples": bad.head(3).to_dict("records"),
                }
            )

    active = wh.query("select distinct user_id from marts.interaction_events")["user_id"]
    counts = df.groupby("user_id")["item_id"].nunique()
    missing = set(active) - set(counts.index)
    add("every active user has recommendations", "user_id", pd.DataFrame({"user_id": sorted(missing)}))
    short = counts[counts < k]
    add(f"k={k} distinct items per user", "item_id", short.rename("n").reset_index())
    known = set(wh.query("select item_id from marts.item_features")["item_id"])
    add("item_id is a known catalogue item", "item_id", df.loc[~df["item_id"].isin(known), ["user_id", "item_id"]])
    types = ", ".join(f"'{t}'" for t in exclude_event_types)
    bought = wh.query(f"select distinct user_id, item_id from marts.interaction_events where event_type in ({types})")
    clash = df.merge(bought, on=["user_id", "item_id"])
    add("no already-purchased items", "item_id", clash[["user_id", "item_id"]])
    p = df["propensity"]
    add("propensity in (0, 1]", "propensity", df.loc[~((p > 0) & (p <= 1)), ["user_id", "item_id", "propensity"]])
    add("score is finite", "score", df.loc[~np.isfinite(df["score"].astype(float)), ["user_id", "item_id", "score"]])
    if fails:
        raise GateFailure("prepublish_recommendations", fails)
