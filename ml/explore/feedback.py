"""Bandit feedback: shown slots joined with what the user did, and the statistics policies use.

``feedback_from_events`` is the in-memory twin of the dbt mart ``marts.bandit_feedback`` (the
simulator uses it; a test checks both agree on the same events): one row per impression
(recommendation_id, position), ``clicked`` when a click carries the same recommendation_id and
position, ``purchased`` and ``revenue`` from the purchases attributed to the slot (each purchase
to one slot: the slate whose recommendation_id it carries, same item, else the latest impression
of the item to the same user within the attribution window before it; revenue = price x
quantity, quantity 1 when missing, a purchase without a price adds 0), and the logged tag, policy
and propensity when the impression matches a slot the platform logged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from ml.explore import columns as C
from ml.explore.policies import examination_weights
from ml.explore.reward import Learning, reward_column

ATTRIBUTION_HOURS = 72.0
# the feedback columns ``FeedbackStats.from_feedback`` reads (and the reward's own column)
STATS_COLUMNS = (C.POSITION, "user_id", "item_id", C.TAG, C.CLICKED)


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
    base = base.join(_attributed_purchases(base, events, pd.Timedelta(hours=attribution_hours)), on=keys)
    base[C.PURCHASED] = base["_n_purchases"].fillna(0).gt(0).astype("int64")
    base[C.REVENUE] = base["_revenue"].fillna(0.0).astype(np.float64)
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


def _attributed_purchases(shown: pd.DataFrame, events: pd.DataFrame, window: pd.Timedelta) -> pd.DataFrame:
    """Per shown slot (index recommendation_id, position): ``_n_purchases`` and ``_revenue`` of
    the purchases attributed to it (the rule in the module docstring; the mart's ``touches``)."""
    keys = [C.RECOMMENDATION_ID, C.POSITION]
    buys = events[events["event_type"] == "purchase"]
    amounts = buys.reindex(columns=["price", "quantity"])  # all-missing where the events carry neither
    price = pd.to_numeric(amounts["price"], errors="coerce")
    qty = pd.to_numeric(amounts["quantity"], errors="coerce")
    p = pd.DataFrame(
        {
            "_purchase": np.arange(len(buys)),
            "user_id": buys["user_id"].to_numpy(),
            "item_id": buys["item_id"].to_numpy(),
            "_rid": buys[C.RECOMMENDATION_ID].to_numpy(),
            "bought_at": buys["event_at"].to_numpy(),
            "_amount": (price * qty.fillna(1)).to_numpy(np.float64),
        }
    )
    slots = shown[[*keys, "user_id", "item_id", C.SHOWN_AT]]
    direct = p[p["_rid"].notna()].merge(slots.drop(columns="user_id"), on="item_id")
    direct = direct[direct["_rid"] == direct[C.RECOMMENDATION_ID]].assign(_direct=0)
    later = p.merge(slots, on=["user_id", "item_id"])
    later = later[(later["bought_at"] >= later[C.SHOWN_AT]) & (later["bought_at"] <= later[C.SHOWN_AT] + window)]
    touches = pd.concat([direct, later.assign(_direct=1)], ignore_index=True)
    touches = touches.sort_values(
        ["_purchase", "_direct", C.SHOWN_AT, *keys], ascending=[True, True, False, True, True], kind="stable"
    ).drop_duplicates("_purchase")
    return touches.groupby(keys).agg(_n_purchases=("_purchase", "size"), _revenue=("_amount", "sum"))


Pairs = dict[tuple[str, str], tuple[float, float]]
Columns = tuple[np.ndarray, np.ndarray, np.ndarray]


class FeedbackStats:
    """Sufficient statistics of feedback for building contexts (all position-debiased).

    ``user_tag``: (user_id, tag) -> (examined impressions, successes: clicks, or the policies'
    reward, ``ml.explore.reward``); ``user_item``: (user_id, item_id) -> (impressions, clicks);
    ``examination``: weight per slot (1-based index - 1); ``tag_ctr``: successes per examined
    impression per tag over all users.

    Built by :meth:`from_feedback`, the pairs are kept as columns (:meth:`columns`, what
    whole-array code reads); the dicts are made from them the first time they are asked for."""

    def __init__(
        self,
        user_tag: Pairs | None = None,
        user_item: Pairs | None = None,
        examination: np.ndarray | None = None,
        tag_ctr: dict[str, float] | None = None,
        overall_ctr: float = float("nan"),
        n_rows: int = 0,
        columns: dict[str, Columns] | None = None,
    ):
        self._dicts: dict[str, Pairs] = {}
        self._columns: dict[str, Columns] = dict(columns or {})
        for name, d in (("user_tag", user_tag), ("user_item", user_item)):
            if d is not None or name not in self._columns:
                self._dicts[name] = dict(d or {})
                self._columns.pop(name, None)
        self.examination = np.ones(100) if examination is None else examination
        self.tag_ctr = dict(tag_ctr or {})
        self.overall_ctr = overall_ctr
        self.n_rows = n_rows

    def __repr__(self) -> str:
        return f"FeedbackStats(n_rows={self.n_rows}, overall_ctr={self.overall_ctr!r})"

    def _pairs_dict(self, name: str) -> Pairs:
        if name not in self._dicts:
            a, b, v = self._columns[name]
            vals = zip(v[:, 0].tolist(), v[:, 1].tolist(), strict=True)
            self._dicts[name] = dict(zip(zip(a.tolist(), b.tolist(), strict=True), vals, strict=True))
        return self._dicts[name]

    @property
    def user_tag(self) -> Pairs:
        return self._pairs_dict("user_tag")

    @property
    def user_item(self) -> Pairs:
        return self._pairs_dict("user_item")

    @classmethod
    def from_feedback(
        cls,
        feedback: pd.DataFrame,
        item_tags: dict[str, str] | None = None,
        learning: Learning = Learning(),
        pair_rows: np.ndarray | None = None,
    ) -> FeedbackStats:
        """Aggregate feedback rows; rows without a logged tag take the item's tag from ``item_tags``
        (e.g. the shop's own earlier recommendation slates), rows with neither are not used.
        The (user, tag) and per-tag successes are ``learning``'s reward (clicks by default); the
        slots' examination and the (user, item) counts are clicks.

        ``pair_rows``: a boolean mask of the rows whose users' (user, tag) and (user, item) pairs
        are wanted (a publish shard's users); the examination weights and the per-tag and
        overall rates are still every row's. None: every user's pairs."""
        if feedback is None or feedback.empty:
            return cls()
        fb = learning.apply(feedback[list(dict.fromkeys([*STATS_COLUMNS, reward_column(learning.reward)]))])
        if item_tags:
            missing = fb[C.TAG].isna()
            if missing.all():
                fb[C.TAG] = fb["item_id"].map(item_tags)
            elif missing.any():  # only rows without a logged tag are looked up
                fb.loc[missing, C.TAG] = fb.loc[missing, "item_id"].map(item_tags)
        e = examination_weights(fb)
        fb["_exam"] = e[np.clip(fb[C.POSITION].to_numpy(np.int64), 1, len(e)) - 1]
        fb[C.CLICKED] = fb[C.CLICKED].astype(np.float64)
        tagged = fb[fb[C.TAG].notna()]
        pairs, tagged_pairs = fb, tagged
        if pair_rows is not None:
            pairs = fb[np.asarray(pair_rows, dtype=bool)]
            tagged_pairs = pairs[pairs[C.TAG].notna()]
        ui = pairs.groupby(["user_id", "item_id"])[C.CLICKED].agg(["size", "sum"])
        ut = tagged_pairs.groupby(["user_id", C.TAG]).agg(exam=("_exam", "sum"), clicks=(C.REWARD, "sum"))
        tg = tagged.groupby(C.TAG).agg(exam=("_exam", "sum"), clicks=(C.REWARD, "sum"))
        overall = float((fb[C.REWARD].sum() + 1.0) / (fb["_exam"].sum() + 2.0))
        return cls(
            examination=e,
            tag_ctr={
                str(t): float((c + 10 * overall) / (x + 10))
                for t, x, c in zip(tg.index, tg["exam"].to_numpy(), tg["clicks"].to_numpy(), strict=True)
            },
            overall_ctr=overall,
            n_rows=len(fb),
            columns={
                "user_tag": _pair_columns(ut.index, ut["exam"], ut["clicks"]),
                "user_item": _pair_columns(ui.index, ui["size"], ui["sum"]),
            },
        )

    def columns(self, name: str) -> Columns:
        """``user_tag`` or ``user_item`` as columns: (user ids, tags or item ids, (n, 2) values)."""
        if name not in self._columns:
            d = self._pairs_dict(name)
            self._columns[name] = (
                np.array([a for a, _ in d], dtype=object),
                np.array([b for _, b in d], dtype=object),
                np.array(list(d.values()), dtype=np.float64).reshape(-1, 2),
            )
        return self._columns[name]

    def rate(self, user_tags: Iterable[tuple[str, str]], default: float, smoothing: float = 500.0) -> float:
        """Clicks per examined impression over the given (user, tag) pairs, shrunk to ``default``."""
        found = [v for v in map(self.user_tag.get, user_tags) if v]
        return shrunk_rate([v[0] for v in found], [v[1] for v in found], default, smoothing)


def shrunk_rate(exam: Iterable[float], clicks: Iterable[float], default: float, smoothing: float = 500.0) -> float:
    """(sum clicks + smoothing x default) / (sum examined impressions + smoothing). The sums are
    exact (``math.fsum``), so the rate does not depend on the order the values come in (a set of
    string pairs iterates in a different order in every process)."""
    return (math.fsum(clicks) + smoothing * default) / (math.fsum(exam) + smoothing)


def _pair_columns(index: pd.Index, a: pd.Series, b: pd.Series) -> Columns:
    """The two index levels as ``str`` object arrays and the two values as an (n, 2) array."""
    first = index.get_level_values(0).astype(str).to_numpy(dtype=object)
    second = index.get_level_values(1).astype(str).to_numpy(dtype=object)
    return first, second, np.column_stack([a.to_numpy(np.float64), b.to_numpy(np.float64)]).reshape(-1, 2)
