"""The synthetic shop's users answering what is published, written as landing batches.

The users answer the slates in ``serving.recommendations_current`` according to the simulator's
click model (``ml.simulate.environment``), and the answers are written exactly like a shop export
(impression, click and purchase events carrying ``recommendation_id`` and ``position``), so they
travel through ingest and dbt into ``marts.bandit_feedback``.

* :func:`respond_to_slates`: one batch of answers to one set of slates (tests of one cycle).
* :class:`ShopDays`: the living shop, one day at a time. Each day a random share of the users
  visits: they browse their own interests (searches, views, carts, purchases with prices and
  quantities, reviews whose rating follows the item's style match), and they see the slate
  currently published for them and answer it (impressions, clicks, purchases, reviews). Fatigue
  and purchases carry over from day to day, and the clicks on slates count towards the
  "interests discovered": the share of each user's true interests (``_ground_truth/``, for
  display only) that got a click.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ml.explore import columns as C
from ml.shop.reviews import review_ratings, review_texts
from ml.simulate.environment import ShopEnvironment

log = logging.getLogger(__name__)

EVENT_COLUMNS = (
    "event_id",
    "event_time",
    "user_id",
    "session_id",
    "event_type",
    "item_id",
    "query",
    "price",
    "quantity",
    "rating",
    "review_text",
    "recommendation_id",
    "position",
)


def respond_to_slates(
    slates: pd.DataFrame,
    shop_dir: Path,
    when: pd.Timestamp,
    seed: int = 0,
    day: int = 0,
    days: int = 30,
    visit_share: float = 1.0,
) -> pd.DataFrame:
    """Landing ``events`` rows answering ``slates`` (user_id, rank, item_id, recommendation_id).

    ``shop_dir`` is the generated shop (its ``_ground_truth/`` folder); events happen on the day
    starting at ``when`` (UTC). Only a random ``visit_share`` of the users visits that day and
    sees its slate. Event ids derive from (recommendation_id, position, type), so the same slates
    and seed give the same batch."""
    _check_share(visit_share)
    truth_dir = Path(shop_dir) / "_ground_truth"
    truth = pd.read_parquet(truth_dir / "user_interests.parquet")
    item_tags = pd.read_parquet(truth_dir / "item_tags.parquet")
    rng = np.random.default_rng(seed)
    users = sorted(slates["user_id"].unique())
    if visit_share < 1.0:
        users = sorted(rng.choice(users, max(1, round(visit_share * len(users))), replace=False).tolist())
        slates = slates[slates["user_id"].isin(users)]
    prices = pd.read_parquet(Path(shop_dir) / "items.parquet", columns=["item_id", "price"])
    env = ShopEnvironment(
        truth, item_tags, users, days=days, k=int(slates["rank"].max()), prices=prices.set_index("item_id")["price"]
    )
    start = _naive(when)
    ev = env.respond(slates, day, start - pd.Timedelta(days=day), rng)
    return _slate_events(ev)


def _item_quality(truth_dir: Path, item_ids: pd.Series) -> pd.Series:
    """Each item's hidden quality (``_ground_truth/item_quality.parquet``); a shop written before
    items had one reads as 0.5 everywhere (no item moves its ratings)."""
    path = truth_dir / "item_quality.parquet"
    if not path.exists():
        log.warning("%s is missing (a shop generated before item quality): every item counts as 0.5", path)
        return pd.Series(0.5, index=item_ids.to_numpy())
    return pd.read_parquet(path).set_index("item_id")["quality"]


def _check_share(visit_share: float) -> None:
    if not 0.0 < visit_share <= 1.0:
        raise ValueError(f"visit_share must be in (0, 1], got {visit_share}")


def _naive(when: pd.Timestamp) -> pd.Timestamp:
    t = pd.Timestamp(when)
    return t.tz_convert("UTC").tz_localize(None) if t.tzinfo else t


def _slate_events(ev: pd.DataFrame) -> pd.DataFrame:
    """Landing rows for the environment's answers (``ShopEnvironment.respond``; purchases at the
    catalogue price it was given)."""
    purchase = ev["event_type"] == "purchase"
    return pd.DataFrame(
        {
            "event_id": [
                f"FB-{r}-{p}-{t}"
                for r, p, t in zip(ev["recommendation_id"], ev["position"], ev["event_type"], strict=True)
            ],
            "event_time": pd.to_datetime(ev["event_at"]).dt.tz_localize("UTC"),
            "user_id": ev["user_id"],
            "session_id": "FB-" + ev["recommendation_id"].astype(str),
            "event_type": ev["event_type"],
            "item_id": ev["item_id"],
            "price": ev["price"].where(purchase),
            "recommendation_id": ev["recommendation_id"].where(~purchase),
            "position": ev["position"].where(~purchase).astype("Int64"),
            "quantity": pd.array([1 if p else None for p in purchase], dtype="Int64"),
        }
    ).sort_values(["event_time", "event_id"], kind="stable")


@dataclass(frozen=True)
class DayAnswers:
    """One simulated day: the landing rows and what the published slates earned.

    ``slates`` are the shown slots (user_id, item_id, rank, is_exploration, clicked, purchased);
    ``events`` the whole landing batch (organic browsing included), in the landing contract's
    columns."""

    day: int
    date: pd.Timestamp
    events: pd.DataFrame
    slates: pd.DataFrame
    visitors: int
    interests_discovered: float

    def stats(self) -> dict[str, float | int]:
        s = self.slates
        explore = s[s[C.IS_EXPLORATION]] if len(s) else s
        exploit = s[~s[C.IS_EXPLORATION]] if len(s) else s
        counts = self.events["event_type"].value_counts()
        return {
            "visitors": self.visitors,
            "impressions": len(s),
            "clicks": int(s["clicked"].sum()) if len(s) else 0,
            "purchases": int(s["purchased"].sum()) if len(s) else 0,
            "ctr": _rate(s),
            "ctr_exploration": _rate(explore),
            "ctr_exploitation": _rate(exploit),
            "exploration_impressions": len(explore),
            "events": len(self.events),
            "reviews": int(counts.get("review", 0)),
            "interests_discovered": round(self.interests_discovered, 4),
        }


def _rate(slots: pd.DataFrame) -> float:
    return round(float(slots["clicked"].mean()), 4) if len(slots) else 0.0


class ShopDays:
    """The living shop's users, one day at a time (see the module docstring).

    ``shop_dir``: a shop written by :func:`ml.shop.generate.write_shop`; ``days``: the horizon
    over which interests drift; ``visit_share``: the share of users visiting each day. The same
    seed, day and slates give the same batch."""

    def __init__(
        self,
        shop_dir: Path,
        seed: int = 7,
        days: int = 30,
        visit_share: float = 0.3,
        k: int = 10,
        broken_share: float = 0.002,
    ):
        _check_share(visit_share)
        if not 0 <= broken_share < 0.05:
            raise ValueError(f"broken_share must be in [0, 0.05), got {broken_share}")
        self.broken_share = broken_share
        self.shop_dir = Path(shop_dir)
        self.seed = seed
        self.visit_share = visit_share
        truth_dir = self.shop_dir / "_ground_truth"
        truth = pd.read_parquet(truth_dir / "user_interests.parquet")
        item_tags = pd.read_parquet(truth_dir / "item_tags.parquet")
        users = pd.read_parquet(self.shop_dir / "users.parquet", columns=["user_id"])["user_id"]
        items = pd.read_parquet(self.shop_dir / "items.parquet", columns=["item_id", "price", "created_at"])
        self.prices = items.set_index("item_id")["price"]
        self.quality = _item_quality(truth_dir, items["item_id"])
        self.env = ShopEnvironment(truth, item_tags, sorted(users.astype(str)), days=days, k=k, prices=self.prices)
        self._released = items.set_index("item_id")["created_at"]
        self.users = np.asarray(self.env.users, dtype=object)
        self._truth_pairs = self.env.true_interest.copy()
        self._discovered = np.zeros_like(self._truth_pairs)

    def replay(self, earlier: pd.DataFrame) -> None:
        """Carry fatigue, purchases and discoveries over from earlier days' landing events (a
        demo that continues where the last one stopped)."""
        shown = earlier[earlier["event_type"] == "impression"]
        self._count(shown, self.env.shown, add=True)
        bought = earlier[earlier["event_type"] == "purchase"]
        self._count(bought, self.env.bought, add=False)
        clicks = earlier[(earlier["event_type"] == "click") & earlier["recommendation_id"].notna()]
        self._discover(clicks["user_id"], clicks["item_id"])

    def _count(self, ev: pd.DataFrame, into: np.ndarray, add: bool) -> None:
        u = ev["user_id"].map(self.env.user_index)
        i = ev["item_id"].map(self.env.item_index)
        ok = u.notna() & i.notna()
        u, i = u[ok].to_numpy(np.int64), i[ok].to_numpy(np.int64)
        if add:
            np.add.at(into, (u, i), 1)
        else:
            into[u, i] = True

    def _discover(self, users: pd.Series, items: pd.Series) -> None:
        u = users.map(self.env.user_index)
        i = items.map(self.env.item_index)
        ok = u.notna() & i.notna()
        u, i = u[ok].to_numpy(np.int64), i[ok].to_numpy(np.int64)
        t = self.env._item_tag_idx[i]
        hit = self._truth_pairs[u, t]
        self._discovered[u[hit], t[hit]] = True

    def interests_discovered(self) -> float:
        """Mean over users (with true interests) of the share of them that got a click."""
        n = self._truth_pairs.sum(axis=1)
        has = n > 0
        return float((self._discovered.sum(axis=1)[has] / n[has]).mean()) if has.any() else 0.0

    def answer(self, slates: pd.DataFrame, day: int, date: pd.Timestamp) -> DayAnswers:
        """The day starting at ``date`` (UTC midnight): the visitors' answers to ``slates``
        (serving.recommendations_current rows) and their own browsing."""
        start = _naive(date).normalize()
        rng = np.random.default_rng([self.seed, day])
        n_visit = max(1, round(self.visit_share * len(self.users)))
        visitors = np.sort(rng.choice(self.users, n_visit, replace=False))
        shown = slates[slates["user_id"].isin(set(visitors))]
        shown = shown[self._on_sale(shown["item_id"], start)]
        ev = self.env.respond(shown, day, start - pd.Timedelta(days=day), rng)
        answered = _slate_events(ev)
        clicks = ev[ev["event_type"] == "click"]
        self._discover(clicks["user_id"], clicks["item_id"])
        imp = ev[ev["event_type"] == "impression"]
        key = [C.RECOMMENDATION_ID, C.POSITION]
        slots = imp[["user_id", "item_id", *key]].merge(
            shown[[C.RECOMMENDATION_ID, "rank", C.IS_EXPLORATION]].rename(columns={"rank": C.POSITION}), on=key
        )
        for kind, col in (("click", "clicked"), ("purchase", "purchased")):
            hit = ev.loc[ev["event_type"] == kind, key].drop_duplicates().assign(**{col: True})
            slots = slots.merge(hit, on=key, how="left")
            slots[col] = slots[col].astype("boolean").fillna(False).astype(bool)
        bought = ev[ev["event_type"] == "purchase"]
        reviews = self._reviews(bought["user_id"], bought["item_id"], bought["event_at"], rng, f"D{day:03d}-FB")
        organic = self._browse(visitors, day, start, rng)
        batch = pd.concat([answered, reviews, organic], ignore_index=True)
        batch = self._break_some(batch.reindex(columns=list(EVENT_COLUMNS)), day, rng)
        for col in ("quantity", "rating", "position"):
            batch[col] = batch[col].astype("Int64")
        batch = batch.sort_values(["event_time", "event_id"], kind="stable").reset_index(drop=True)
        return DayAnswers(day, start, batch, slots, len(visitors), self.interests_discovered())

    def _on_sale(self, items: pd.Series | np.ndarray, start: pd.Timestamp) -> np.ndarray:
        """Whether each item is released by the end of the day starting at ``start`` (an item
        released later can be neither seen nor bought that day)."""
        released = pd.DatetimeIndex(pd.to_datetime(self._released.reindex(np.asarray(items)), utc=True))
        return np.asarray(~(released >= pd.Timestamp(start, tz="UTC") + pd.Timedelta(days=1)))

    def _break_some(self, batch: pd.DataFrame, day: int, rng: np.random.Generator) -> pd.DataFrame:
        """Append copies of a few organic rows broken the way real exports break (no user id,
        an event type nobody declared, a negative quantity), each with its own event id: the
        ingest quarantines them and the rest of the batch goes through."""
        n = round(self.broken_share * len(batch))
        organic = batch[batch["event_id"].str.startswith(f"D{day:03d}-E")]
        if n == 0 or organic.empty:
            return batch
        bad = organic.iloc[rng.integers(0, len(organic), n)].copy()
        kind = np.arange(n) % 3
        bad["event_id"] = [f"D{day:03d}-X{i:05d}" for i in range(n)]
        bad.loc[kind == 0, "user_id"] = None
        bad.loc[kind == 1, "event_type"] = "wishlist"
        bad.loc[kind == 2, "event_type"] = "purchase"
        bad.loc[kind == 2, "quantity"] = -1
        bad.loc[kind == 2, "price"] = bad.loc[kind == 2, "item_id"].map(self.prices)
        return pd.concat([batch, bad], ignore_index=True)

    def _browse(self, visitors: np.ndarray, day: int, start: pd.Timestamp, rng: np.random.Generator) -> pd.DataFrame:
        """One session per visitor: maybe a search, views of items of the user's current (not
        dormant) interests or, now and then, anything; carts, purchases and reviews."""
        env = self.env
        u = np.array([env.user_index[v] for v in visitors], dtype=np.int64)
        p = env.base_probability(day)[u] * np.where(env.dormant[u][:, env._item_tag_idx], 0.0, 1.0)
        p = np.where(env.bought[u], 0.0, p) + 1e-4
        p = p * self._on_sale(env.item_ids, start)[None, :]
        p = p / p.sum(axis=1, keepdims=True)
        n_views = 1 + rng.poisson(3, len(u))
        rows_u = np.repeat(np.arange(len(u)), n_views)
        cdf = np.cumsum(p, axis=1)
        item = (rng.random(len(rows_u))[:, None] > cdf[rows_u]).sum(axis=1).clip(0, p.shape[1] - 1)
        order = np.concatenate([np.arange(n) for n in n_views]).astype(np.int64)
        session_start = start + pd.to_timedelta(rng.integers(0, 22 * 60, len(u)), unit="min")
        at = session_start[rows_u] + pd.to_timedelta(60 * (order + 1), unit="s")
        sess = np.array([f"D{day:03d}-S{v}" for v in visitors], dtype=object)
        items = env.item_ids[item]
        views = pd.DataFrame({"user_id": visitors[rows_u], "item_id": items, "session_id": sess[rows_u], "at": at})
        views["event_type"] = "view"
        carted = views[rng.random(len(views)) < 0.15]
        carts = carted.assign(event_type="add_to_cart", at=carted["at"] + pd.Timedelta(seconds=20))
        bought = carts[rng.random(len(carts)) < 0.45]
        buys = bought.assign(event_type="purchase", at=bought["at"] + pd.Timedelta(minutes=5))
        self._count(buys, env.bought, add=False)
        first = views.drop_duplicates("session_id")
        first = first[rng.random(len(first)) < 0.5]
        tags = env.item_tag[first["item_id"].map(env.item_index).to_numpy(np.int64)]
        searches = first.assign(
            event_type="search",
            at=first["at"] - pd.Timedelta(seconds=30),
            query=[t.split(":", 1)[-1].replace("_", " ") for t in tags],
            item_id=None,
        )
        out = pd.concat([searches, views, carts, buys], ignore_index=True)
        basket = out["event_type"].isin(["add_to_cart", "purchase"])
        quantity = pd.Series(1 + (rng.random(len(out)) < 0.15).astype(np.int64), dtype="Int64")
        out["quantity"] = quantity.where(basket)
        out["price"] = out["item_id"].map(self.prices).where(basket)
        out["event_id"] = [f"D{day:03d}-E{n:08d}" for n in range(len(out))]
        out["event_time"] = pd.to_datetime(out.pop("at")).dt.tz_localize("UTC")
        reviews = self._reviews(buys["user_id"], buys["item_id"], buys["at"], rng, f"D{day:03d}-R")
        return pd.concat([out, reviews], ignore_index=True)

    def _reviews(
        self, users: pd.Series, items: pd.Series, bought_at: pd.Series, rng: np.random.Generator, prefix: str
    ) -> pd.DataFrame:
        """A quarter of purchases get a review, rated and worded as the shop generator does
        (``ml.shop.reviews``: 4-5 stars when the item has the user's style, moved by the item's
        hidden quality; the wording from its own stream, ``prefix`` keyed)."""
        pick = rng.random(len(users)) < 0.25
        users, items, at = users[pick], items[pick], pd.to_datetime(bought_at[pick])
        u = users.map(self.env.user_index).to_numpy(np.int64)
        i = items.map(self.env.item_index).to_numpy(np.int64)
        match = self.env._style[u, i] > 1.0
        rating = review_ratings(rng, match, items.map(self.quality).to_numpy(np.float64))
        key = [int(b) for b in f"{self.seed}|{prefix}".encode()]
        text = review_texts(np.random.default_rng(key), rating)
        times = at + pd.Timedelta(hours=1)
        return pd.DataFrame(
            {
                "event_id": [f"{prefix}{n:07d}" for n in range(len(u))],
                "event_time": times.dt.tz_localize("UTC") if times.dt.tz is None else times,
                "user_id": users.to_numpy(),
                "session_id": [f"{prefix}-S{v}" for v in users],
                "event_type": "review",
                "item_id": items.to_numpy(),
                "rating": pd.array(rating, dtype="Int64"),
                "review_text": text,
            }
        )
