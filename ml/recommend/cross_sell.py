"""Cross-sell from the category association rules: "bought in X, often buys in Y".

``build_features`` mines pairwise rules between categories (``ml.category_rules``: antecedent,
consequent, confidence, lift; :mod:`ml.analysis.rules`). For a user whose latest purchase within
``window_days`` was in category X, the rules X -> Y with ``lift >= min_lift`` name the
categories Y that buyers of X go on to buy, best lift first. The user's slate gains one item from
the best such Y that the slate does not reach yet: the user's best-ranked candidate of the
recommender in Y, else Y's most popular item, never an excluded item (bought, or otherwise
excluded by the caller). It takes rank ``position``; the items below move down one and the last
leaves the top-k. Users without a recent purchase, or whose slate already reaches every Y, keep
their slate.

One function, :func:`cross_sell`, on index arrays, so the benchmark
(``python -m ml bench crosssell``) and any serving path apply the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp


@dataclass(frozen=True)
class CrossSellSettings:
    """``window_days``: how recent a purchase triggers cross-sell; ``min_lift``: the weakest
    rule used (1 = no better than chance); ``position``: the 1-based rank the item takes."""

    window_days: float = 14.0
    min_lift: float = 1.5
    position: int = 3

    def __post_init__(self) -> None:
        if not self.window_days > 0:
            raise ValueError(f"window_days must be > 0, got {self.window_days}")
        if self.min_lift < 0:
            raise ValueError(f"min_lift must be >= 0, got {self.min_lift}")
        if self.position < 1:
            raise ValueError(f"position must be >= 1, got {self.position}")


@dataclass
class CrossSold:
    """The slates after cross-sell: ``idx`` (users, k) item indices; ``slot`` (users,) the 0-based
    rank of the cross-sold item or -1; ``antecedent``/``consequent`` the rule used (None where no
    item was added)."""

    idx: np.ndarray
    slot: np.ndarray
    antecedent: np.ndarray
    consequent: np.ndarray

    @property
    def gained(self) -> np.ndarray:
        return self.slot >= 0


def recent_purchase_category(
    purchases: pd.DataFrame, user_ids: np.ndarray, as_of: pd.Timestamp, window_days: float
) -> np.ndarray:
    """Per user of ``user_ids``: the category of their latest purchase in the ``window_days``
    before ``as_of`` (``purchases``: user_id, category, event_at), else None."""
    start = as_of - pd.Timedelta(days=window_days)
    recent = purchases[(purchases["event_at"] > start) & (purchases["event_at"] <= as_of)]
    latest = recent.sort_values(["user_id", "event_at"], kind="stable").drop_duplicates("user_id", keep="last")
    by_user = dict(zip(latest["user_id"].astype(str), latest["category"], strict=True))
    return np.array([by_user.get(str(u)) for u in user_ids], dtype=object)


def cross_sell(
    candidates: np.ndarray,
    k: int,
    bought_in: np.ndarray,
    item_category: np.ndarray,
    rules: pd.DataFrame,
    popular: np.ndarray,
    excluded: sp.csr_matrix | None = None,
    settings: CrossSellSettings | None = None,
) -> CrossSold:
    """The top-``k`` slates of ``candidates`` (users, n >= k: item indices best first, -1 empty)
    with at most one cross-sold item each (the rule in the module docstring).

    ``bought_in``: per user the category of the recent purchase (None: none); ``item_category``:
    per item index its category; ``rules``: antecedent, consequent, lift; ``popular``: item
    indices, most popular first; ``excluded``: (users, items) pairs never to show."""
    s = settings or CrossSellSettings()
    if candidates.shape[1] < k:
        raise ValueError(f"need at least k={k} candidates per user, got {candidates.shape[1]}")
    position = min(s.position, k) - 1
    usable = rules[(rules["lift"] >= s.min_lift) & (rules["antecedent"] != rules["consequent"])]
    usable = usable.sort_values(["antecedent", "lift", "consequent"], ascending=[True, False, True], kind="stable")
    targets = {a: g["consequent"].tolist() for a, g in usable.groupby("antecedent", sort=False)}
    category = pd.Series(np.asarray(item_category, dtype=object))
    popular_in = {c: g.tolist() for c, g in pd.Series(popular).groupby(category.iloc[popular].to_numpy(), sort=False)}

    idx = candidates[:, :k].copy()
    n_users = len(idx)
    slot = np.full(n_users, -1, dtype=np.int64)
    antecedent = np.full(n_users, None, dtype=object)
    consequent = np.full(n_users, None, dtype=object)
    for u in np.flatnonzero(pd.notna(bought_in)).tolist():
        wanted = targets.get(bought_in[u])
        if not wanted:
            continue
        shown = idx[u][idx[u] >= 0]
        reached = set(category.iloc[shown].tolist())
        banned = set(shown.tolist()) | (set(excluded[u].indices.tolist()) if excluded is not None else set())
        pick = _first_item(candidates[u, k:], [y for y in wanted if y not in reached], category, popular_in, banned)
        if pick is None:
            continue
        item, y = pick
        idx[u, position + 1 :] = idx[u, position:-1].copy()
        idx[u, position] = item
        slot[u], antecedent[u], consequent[u] = position, bought_in[u], y
    return CrossSold(idx, slot, antecedent, consequent)


def _first_item(
    later: np.ndarray,
    wanted: list[str],
    category: pd.Series,
    popular_in: dict[str, list[int]],
    banned: set[int],
) -> tuple[int, str] | None:
    """(item, category) for the first wanted category that has an allowed item: the best-ranked
    later candidate in it, else its most popular item."""
    later = later[later >= 0]
    later_category = category.iloc[later].to_numpy() if len(later) else np.zeros(0, dtype=object)
    for y in wanted:
        for i in later[later_category == y].tolist():
            if i not in banned:
                return int(i), y
        for i in popular_in.get(y, []):
            if i not in banned:
                return int(i), y
    return None


def reason(antecedent: str, consequent: str) -> str:
    """The shown explanation of a cross-sold item."""
    return (
        f"you bought in {antecedent.rsplit(' > ', 1)[-1]}; shoppers who do often buy {consequent.rsplit(' > ', 1)[-1]}"
    )
