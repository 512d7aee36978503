"""An interactive shop on top of the synthetic shop's ground truth.

Users carry the generator's latent interests (``truth_user_interests``: active, emerging and
dormant leaf tags with start/end weights, plus one style); items carry their leaf tag and style
(``truth_item_tags``). A slot's click probability on simulation day d is

    P(click) = position_bias[slot] * base * style * fatigue

* ``base`` = ``p_interest`` x strength for an item of one of the user's true interests (dormant
  ones included: never in the history, clicked when shown), ``p_other`` otherwise. The
  strength drifts linearly from the interest's start weight to its end weight over the
  simulated days (0.6 to 1.4 relative to the user's strongest interest): interest drift.
* ``style`` = ``style_boost`` when the item has the user's style.
* ``fatigue`` = ``fatigue ** n`` with n the earlier impressions of the same item to the user.
* After a click the user buys with probability ``p_purchase`` (x ``style_boost`` on style);
  bought items are never clickable again. A purchase is one unit at the item's catalogue price
  (``prices``; its revenue is what the ``revenue`` reward counts).

Position bias follows the generator's first five slots and decays by 15 % per slot after.
The oracle knows all of this and shows, per user and day, the k items with the highest click
probability in the best slots; regret is its expected clicks minus the policy's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.explore import columns as C
from ml.shop.generate import POSITION_BIAS


def position_bias(k: int) -> np.ndarray:
    """Examination probability of slots 1..k, shape (k,)."""
    base = list(POSITION_BIAS)
    while len(base) < k:
        base.append(base[-1] * 0.85)
    return np.asarray(base[:k], dtype=np.float64)


@dataclass
class EnvironmentSettings:
    p_interest: float = 0.30
    p_other: float = 0.02
    style_boost: float = 1.3
    fatigue: float = 0.7
    p_purchase: float = 0.15


class ShopEnvironment:
    """Click/purchase responses and the oracle for a set of users and items.

    ``truth``: user_id, tag, status, weight_start, weight_end (cat: and style: tags);
    ``item_tags``: item_id, tag (cat:, style:, tier: per item)."""

    def __init__(
        self,
        truth: pd.DataFrame,
        item_tags: pd.DataFrame,
        users: list[str],
        days: int,
        k: int = 10,
        settings: EnvironmentSettings | None = None,
        prices: pd.Series | None = None,
    ):
        self.s = settings or EnvironmentSettings()
        self.prices = prices if prices is not None else pd.Series(dtype=np.float64)
        self.users = list(users)
        self.days = max(days, 1)
        self.k = k
        self.pos_bias = position_bias(k)
        self.user_index = {u: i for i, u in enumerate(self.users)}
        cat = item_tags[item_tags["tag"].str.startswith("cat:")].drop_duplicates("item_id")
        sty = item_tags[item_tags["tag"].str.startswith("style:")].drop_duplicates("item_id")
        self.item_ids = np.asarray(sorted(cat["item_id"]), dtype=object)
        self.item_index = {it: j for j, it in enumerate(self.item_ids)}
        self.item_tag = cat.set_index("item_id")["tag"].reindex(self.item_ids).to_numpy(dtype=object)
        self.item_style = sty.set_index("item_id")["tag"].reindex(self.item_ids).to_numpy(dtype=object)
        tags = np.unique(self.item_tag.astype(str))
        self.tag_index = {t: j for j, t in enumerate(tags)}
        item_tag_idx = np.array([self.tag_index[t] for t in self.item_tag], dtype=np.int64)
        U, T = len(self.users), len(tags)
        w0 = np.zeros((U, T))
        w1 = np.zeros((U, T))
        self.true_interest = np.zeros((U, T), dtype=bool)
        self.dormant = np.zeros((U, T), dtype=bool)
        tr = truth[truth["user_id"].isin(self.user_index) & truth["tag"].isin(self.tag_index)]
        ui = tr["user_id"].map(self.user_index).to_numpy()
        ti = tr["tag"].map(self.tag_index).to_numpy()
        w0[ui, ti] = tr["weight_start"].to_numpy(np.float64)
        w1[ui, ti] = tr["weight_end"].to_numpy(np.float64)
        self.true_interest[ui, ti] = True
        self.dormant[ui, ti] = (tr["status"] == "dormant").to_numpy()
        self._w0, self._w1 = w0, w1
        self._item_tag_idx = item_tag_idx
        styles = truth[truth["tag"].str.startswith("style:") & truth["user_id"].isin(self.user_index)]
        user_style = dict(zip(styles["user_id"], styles["tag"], strict=False))
        style_match = np.zeros((U, len(self.item_ids)), dtype=bool)
        for u, st in user_style.items():
            style_match[self.user_index[u]] = self.item_style == st
        self._style = np.where(style_match, self.s.style_boost, 1.0)
        self.shown = np.zeros((U, len(self.item_ids)), dtype=np.int64)
        self.bought = np.zeros((U, len(self.item_ids)), dtype=bool)

    def reset(self) -> None:
        self.shown[:] = 0
        self.bought[:] = False

    def base_probability(self, day: int) -> np.ndarray:
        """Click probability at slot 1 before fatigue, shape (users, items)."""
        t = min(max(day / max(self.days - 1, 1), 0.0), 1.0)
        w = (1 - t) * self._w0 + t * self._w1
        top = np.maximum(w.max(axis=1, keepdims=True), 1e-9)
        strength = np.where(self.true_interest, 0.6 + 0.8 * w / top, 0.0)
        base_tag = np.where(self.true_interest, self.s.p_interest * strength, self.s.p_other)
        return base_tag[:, self._item_tag_idx] * self._style

    def click_probability(self, day: int) -> np.ndarray:
        """Per (user, item) at slot 1 with fatigue; bought items 0. Shape (users, items)."""
        p = self.base_probability(day) * self.s.fatigue**self.shown
        return np.where(self.bought, 0.0, np.clip(p, 0.0, 1.0))

    def oracle_expected_clicks(self, day: int) -> np.ndarray:
        """Best achievable expected clicks per user today, shape (users,)."""
        p = self.click_probability(day)
        k = min(self.k, p.shape[1])
        top = -np.sort(-p, axis=1)[:, :k]
        return top @ self.pos_bias[:k]

    def respond(self, slates: pd.DataFrame, day: int, start: pd.Timestamp, rng: np.random.Generator) -> pd.DataFrame:
        """Events for published slates (user_id, rank, item_id, recommendation_id): an impression
        per slot, clicks and purchases drawn from the model. Updates fatigue and purchases.
        Returns event rows (event_id, event_type, user_id, item_id, recommendation_id, position,
        event_at, price and quantity on purchases) plus ``expected_click`` per impression (its true
        click probability)."""
        u = slates["user_id"].map(self.user_index).to_numpy()
        i = slates["item_id"].map(self.item_index).to_numpy()
        ok = ~(pd.isna(u) | pd.isna(i))
        sl = slates[ok].reset_index(drop=True)
        u, i = u[ok].astype(np.int64), i[ok].astype(np.int64)
        pos = sl["rank"].to_numpy(np.int64)
        p = self.click_probability(day)[u, i] * self.pos_bias[np.clip(pos, 1, self.k) - 1]
        click = rng.random(len(p)) < p
        p_buy = self.s.p_purchase * self._style[u, i]
        buy = click & (rng.random(len(p)) < p_buy)
        np.add.at(self.shown, (u, i), 1)
        self.bought[u[buy], i[buy]] = True
        minute = pd.to_timedelta(rng.integers(0, 23 * 60, len(sl)), unit="min")
        shown_at = start + pd.Timedelta(days=day) + minute
        base = pd.DataFrame(
            {
                "user_id": sl["user_id"].to_numpy(),
                "item_id": sl["item_id"].to_numpy(),
                C.RECOMMENDATION_ID: sl[C.RECOMMENDATION_ID].to_numpy(),
                C.POSITION: pos,
                "event_at": shown_at,
                "expected_click": p,
            }
        )
        imp = base.assign(event_type="impression")
        clk = base[click].assign(event_type="click", event_at=base["event_at"][click] + pd.Timedelta(seconds=30))
        buys = base[buy].assign(
            event_type="purchase",
            event_at=base["event_at"][buy] + pd.Timedelta(minutes=20),
            price=base["item_id"][buy].map(self.prices).to_numpy(np.float64),
            quantity=1,
        )
        ev = pd.concat([imp, clk, buys], ignore_index=True)
        ev["event_id"] = [f"SIM{day:03d}-{n:08d}" for n in range(len(ev))]
        return ev

    def interest_tags(self, user_index: int, dormant_only: bool = False) -> set[str]:
        """The user's true interest tags (only the dormant ones: never in the history)."""
        tags = np.asarray(list(self.tag_index))
        mask = self.dormant[user_index] if dormant_only else self.true_interest[user_index]
        return set(tags[mask].tolist())
