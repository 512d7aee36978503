"""Bandit feedback: shown slots joined with what the user did, and the statistics policies use.

``feedback_from_events`` is the in-memory twin of the dbt mart ``marts.bandit_feedback`` (the
simulator uses it; a test checks both agree on the same events): one row per impression
(recommendation_id, position), ``clicked`` when a click carries the same recommendation_id and
position, ``purchased`` when the user bought the item within the attribution window after that
click (or a purchase carries the slate's recommendation_id), and the logged tag, policy and
propensity when the impression matches a slot the platform logged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml.explore import columns as C
from ml.explore.policies import examination_weights

ATTRIBUTION_HOURS = 72.0


def feedback_from_events(
    logged: pd.DataFrame, events: pd.DataFrame, attribution_hours: float = ATTRIBUTION_HOURS
) -> pd.DataFrame:
    """Join events (event_type, user_id, item_id, recommendation_id, position, event_at) with
    logged slates (``columns.LOGGED_SLATE_COLUMNS``). Returns ``columns.FEEDBACK_COLUMNS``."""
    ev = events[events[C.RECOMMENDATION_ID].notna()] if len(events) else events
    imp = ev[(ev["event_type"] == "impression") & ev[C.POSITION].notna()]
    if imp.empty:
        return pd.DataFrame(columns=list(C.FEEDBACK_COLUMNS))
    keys = [C.RECOMMENDATION_ID, C.POSITION]
    imp = imp.assign(position=imp[C.POSITION].astype("int64"))
    base = imp.groupby(keys, as_index=False).agg(
        user_id=("user_id", "min"), item_id=("item_id", "min"), shown_at=("event_at", "min")
    )
    clk = ev[(ev["event_type"] == "click") & ev[C.POSITION].notna()]
    clk = clk.assign(position=clk[C.POSITION].astype("int64")).groupby(keys, as_index=False)["event_at"].min()
    base = base.merge(clk.rename(columns={"event_at": "clicked_at"}), on=keys, how="left")
    base[C.CLICKED] = base["clicked_at"].notna().astype("int64")
    # purchases: same user and item within the window after the click, or carrying the slate id
    buys = events[events["event_type"] == "purchase"]
    window = pd.Timedelta(hours=attribution_hours)
    m = base[base[C.CLICKED] == 1].merge(
        buys[["user_id", "item_id", "event_at"]].rename(columns={"event_at": "bought_at"}),
        on=["user_id", "item_id"],
    )
    m = m[(m["bought_at"] >= m["clicked_at"]) & (m["bought_at"] <= m["clicked_at"] + window)]
    bought = set(zip(m[C.RECOMMENDATION_ID], m[C.POSITION], strict=True))
    tagged = buys[buys[C.RECOMMENDATION_ID].notna()] if C.RECOMMENDATION_ID in buys else buys.iloc[:0]
    tagged_keys = set(zip(tagged[C.RECOMMENDATION_ID], tagged["item_id"], strict=True))
    base[C.PURCHASED] = [
        int((r, p) in bought or (r, i) in tagged_keys)
        for r, p, i in zip(base[C.RECOMMENDATION_ID], base[C.POSITION], base["item_id"], strict=True)
    ]
    base[C.REWARD] = base[C.CLICKED].astype(np.float64)
    lg = logged.rename(columns={"item_id": "_logged_item", C.RUN_ID: C.LOGGED_RUN_ID})
    cols = [
        C.RECOMMENDATION_ID,
        C.POSITION,
        "_logged_item",
        C.TAG,
        C.POLICY,
        C.POLICY_VERSION,
        C.PROPENSITY,
        C.PROPENSITY_SE,
        C.IS_EXPLORATION,
        C.ARM_FEATURES,
        C.LOGGED_RUN_ID,
    ]
    lg = lg[cols].assign(position=lg[C.POSITION].astype("int64"))
    out = base.merge(lg, on=keys, how="left")
    match = out["_logged_item"] == out["item_id"]
    for c in cols[3:]:
        out[c] = out[c].where(match)
    out[C.HAS_PROPENSITY] = out[C.PROPENSITY].notna()
    out[C.FEEDBACK_ID] = out[C.RECOMMENDATION_ID].astype(str) + "#" + out[C.POSITION].astype(str)
    return out[list(C.FEEDBACK_COLUMNS)].sort_values(keys, kind="stable").reset_index(drop=True)


@dataclass
class FeedbackStats:
    """Sufficient statistics of feedback for building contexts (all position-debiased).

    ``user_tag``: (user_id, tag) -> (examined impressions, clicks); ``user_item``: (user_id,
    item_id) -> (impressions, clicks); ``examination``: weight per slot (1-based index - 1);
    ``tag_ctr``: clicks per examined impression per tag over all users."""

    user_tag: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    user_item: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    examination: np.ndarray = field(default_factory=lambda: np.ones(100))
    tag_ctr: dict[str, float] = field(default_factory=dict)
    overall_ctr: float = float("nan")
    n_rows: int = 0
    _items_by_user: dict[str, dict[str, tuple[float, float]]] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _columns: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def from_feedback(cls, feedback: pd.DataFrame, item_tags: dict[str, str] | None = None) -> FeedbackStats:
        """Aggregate feedback rows; rows without a logged tag take the item's tag from ``item_tags``
        (e.g. the shop's own earlier recommendation slates), rows with neither are not used."""
        if feedback is None or feedback.empty:
            return cls()
        fb = feedback[[C.POSITION, "user_id", "item_id", C.TAG, C.CLICKED]].copy()
        if item_tags:
            fb[C.TAG] = fb[C.TAG].fillna(fb["item_id"].map(item_tags))
        e = examination_weights(fb)
        fb["_exam"] = e[np.clip(fb[C.POSITION].to_numpy(np.int64), 1, len(e)) - 1]
        fb[C.CLICKED] = fb[C.CLICKED].astype(np.float64)
        ui = fb.groupby(["user_id", "item_id"])[C.CLICKED].agg(["size", "sum"])
        tagged = fb[fb[C.TAG].notna()]
        ut = tagged.groupby(["user_id", C.TAG]).agg(exam=("_exam", "sum"), clicks=(C.CLICKED, "sum"))
        tg = tagged.groupby(C.TAG).agg(exam=("_exam", "sum"), clicks=(C.CLICKED, "sum"))
        overall = float((fb[C.CLICKED].sum() + 1.0) / (fb["_exam"].sum() + 2.0))
        cols: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        out = cls(
            user_tag=_pairs(ut.index, ut["exam"], ut["clicks"], cols, "user_tag"),
            user_item=_pairs(ui.index, ui["size"], ui["sum"], cols, "user_item"),
            examination=e,
            tag_ctr={
                str(t): float((c + 10 * overall) / (x + 10))
                for t, x, c in zip(tg.index, tg["exam"].to_numpy(), tg["clicks"].to_numpy(), strict=True)
            },
            overall_ctr=overall,
            n_rows=len(fb),
        )
        out._columns = cols
        return out

    def columns(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``user_tag`` or ``user_item`` as columns: (user ids, tags or item ids, (n, 2) values),
        the arrays the dict was built from when there are any (no per-pair conversion)."""
        if not hasattr(self, "_columns"):  # (an instance unpickled from before this field)
            self._columns = {}
        if name not in self._columns:
            d = getattr(self, name)
            vals = np.array(list(d.values()), dtype=np.float64).reshape(-1, 2)
            self._columns[name] = (
                np.array([a for a, _ in d], dtype=object),
                np.array([b for _, b in d], dtype=object),
                vals,
            )
        return self._columns[name]

    def items_by_user(self) -> dict[str, dict[str, tuple[float, float]]]:
        """``user_item`` grouped by user: user_id -> {item_id: (impressions, clicks)} (built once)."""
        if self._items_by_user is None:
            out: dict[str, dict[str, tuple[float, float]]] = {}
            for (u, i), v in self.user_item.items():
                out.setdefault(u, {})[i] = v
            self._items_by_user = out
        return self._items_by_user

    def rate(self, user_tags: Iterable[tuple[str, str]], default: float, smoothing: float = 500.0) -> float:
        """Clicks per examined impression over the given (user, tag) pairs, shrunk to ``default``.

        The sums are exact (``math.fsum``), so the rate does not depend on the order the pairs
        come in: a set of string pairs iterates in a different order in every process."""
        found = [v for v in map(self.user_tag.get, user_tags) if v]
        exam = math.fsum(v[0] for v in found)
        clicks = math.fsum(v[1] for v in found)
        return (clicks + smoothing * default) / (exam + smoothing)


def _pairs(
    index: pd.Index,
    a: pd.Series,
    b: pd.Series,
    keep: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None,
    name: str = "",
) -> dict[tuple[str, str], tuple[float, float]]:
    # whole-column conversions, then one C-level dict build (iterating Arrow-backed columns
    # element by element costs about a microsecond per value); ``keep[name]`` receives the columns
    first_arr = index.get_level_values(0).astype(str).to_numpy(dtype=object)
    second_arr = index.get_level_values(1).astype(str).to_numpy(dtype=object)
    av, bv = a.to_numpy(np.float64), b.to_numpy(np.float64)
    if keep is not None:
        keep[name] = (first_arr, second_arr, np.column_stack([av, bv]).reshape(-1, 2))
    vals = zip(av.tolist(), bv.tolist(), strict=True)
    return dict(zip(zip(first_arr.tolist(), second_arr.tolist(), strict=True), vals, strict=True))
