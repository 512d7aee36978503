"""``python -m ml bench crosssell --size small --out DIR``: cross-sell from the category rules
against the champion alone, on the time-based holdout.

The shop's interactions are split at ``--holdout-days`` before the newest event. On the training
part: the champion (EASE, the production default config) ranks ``--candidates`` items per user;
the category association rules are mined over user baskets with the settings
``build_features`` uses (:func:`ml.analysis.jobs.run_category_rules`); each user's latest
purchase within ``--window-days`` of the cut names the antecedent category. Then
:func:`ml.recommend.cross_sell.cross_sell` puts one item into rank ``position`` of the champion's
top-k for each such user, for each ``--positions``.

Reported over the users with holdout interactions (the ``bench recsys`` relevance: holdout items
the user had not touched before the cut): nDCG@k, recall@k and hit rate@k of the champion and of
each cross-sell variant, the share of slates that gained a cross-sell item (over these users and
over all users), and how often the cross-sold item was then interacted with against the item it
displaced. ``DIR/crosssell.json`` and ``DIR/crosssell.png``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.bench import SHOP_SIZES, positive_int
from ml.bench.measure import measure, table, write_json

NAME = "crosssell"
HELP = "cross-sell from category rules vs the champion alone (nDCG@10, share of slates gaining an item)"
log = logging.getLogger(__name__)
PURCHASE_WEIGHT = 5.0  # ml.columns.DEFAULT_EVENT_WEIGHTS["purchase"]: the interactions' rating


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", choices=SHOP_SIZES, default="small", help="shop size")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--shop", type=Path, help="an existing shop folder (default: generate into DIR)")
    p.add_argument("--holdout-days", type=float, default=7.0)
    p.add_argument("--k", type=positive_int, default=10)
    p.add_argument("--candidates", type=positive_int, default=50, help="champion candidates per user")
    p.add_argument("--window-days", type=float, default=14.0, help="how recent a purchase triggers cross-sell")
    p.add_argument("--min-lift", type=float, default=1.5)
    p.add_argument("--positions", default="3,10", help="comma-separated 1-based ranks to try")
    p.add_argument("--out", type=Path, required=True)


def _champion_config() -> dict[str, Any]:
    from ml.defaults import DEFAULT_CANDIDATES

    return next(c for c in DEFAULT_CANDIDATES if c["model"] == "ease")


def _rules(train: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """The rules build_features mines: user baskets of categories (its default settings)."""
    from ml.analysis.rules import CategoryAssociationRules

    category = items.set_index(items["item_id"].astype(str))["category_l3"]
    baskets = pd.DataFrame({"basket": train["user_id"], "category_path": train["item_id"].map(category)})
    model = CategoryAssociationRules(min_support=0.005, min_confidence=0.05)
    return model.fit(baskets.dropna().drop_duplicates(), basket_col="basket").rules_


def _purchases(train: pd.DataFrame, item_ids: np.ndarray, item_category: np.ndarray) -> pd.DataFrame:
    """The training purchases as (user_id, category, event_at)."""
    bought = train[train["rating"] == PURCHASE_WEIGHT]
    category = dict(zip(item_ids.astype(str), item_category, strict=True))
    return pd.DataFrame(
        {
            "user_id": bought["user_id"].astype(str),
            "category": bought["item_id"].astype(str).map(category),
            "event_at": pd.to_datetime(bought["timestamp"], unit="s", utc=True),
        }
    )


def _metrics(idx: np.ndarray, relevant: list[set[int]], k: int, n_items: int) -> dict[str, float]:
    from ml.evaluate import EvalContext, evaluate

    m = evaluate(idx, relevant, k, EvalContext(n_items=n_items))
    return {name: round(float(m[name]), 5) for name in (f"ndcg@{k}", f"recall@{k}", f"hit_rate@{k}")}


def _displaced_hits(base: np.ndarray, sold: Any, relevant: list[set[int]], k: int) -> dict[str, Any]:
    """How often the cross-sold item, and the item it pushed out of the top-k, was relevant."""
    rows = np.flatnonzero(sold.gained)
    added = [int(sold.idx[r, sold.slot[r]]) in relevant[r] for r in rows]
    dropped = [int(base[r, k - 1]) in relevant[r] for r in rows]
    return {
        "cross_sold_items": len(rows),
        "cross_sold_relevant": int(sum(added)),
        "displaced_relevant": int(sum(dropped)),
    }


def run(args: argparse.Namespace) -> int:
    from ml.bench.plots import grouped_bars
    from ml.bench.recsys import _fit, build_space, load_synthetic
    from ml.evaluate import temporal_split
    from ml.recommend.cross_sell import CrossSellSettings, cross_sell, recent_purchase_category

    positions = sorted({int(p) for p in str(args.positions).split(",") if p.strip()})
    if not positions or min(positions) < 1 or max(positions) > args.k:
        raise SystemExit(f"--positions must be ranks between 1 and --k={args.k}, got {args.positions!r}")
    if args.candidates < args.k:
        raise SystemExit(f"--candidates ({args.candidates}) must be at least --k ({args.k})")
    ds = load_synthetic(args.size, args.seed, args.shop, args.out)
    train, test, cut = temporal_split(ds.interactions, args.holdout_days, time_col="timestamp")
    space = build_space(ds, train, test)
    config = _champion_config()
    with measure("fit") as fit_stage:
        model = _fit(config["model"], config["params"], space)
    rows = space.eval_rows
    candidates, _ = model.recommend(space.X, rows, k=args.candidates)
    base = candidates[:, : args.k]
    n_items = space.X.shape[1]
    rules = _rules(train, ds.items)
    item_category = (
        ds.items.set_index(ds.items["item_id"].astype(str))["category_l3"]
        .reindex(space.item_ids.astype(str))
        .to_numpy()
    )
    popular = np.argsort(-np.asarray((space.X > 0).sum(axis=0)).ravel(), kind="stable")
    purchases = _purchases(train, space.item_ids, item_category)
    as_of = pd.to_datetime(cut, unit="s", utc=True)
    all_users = np.arange(space.X.shape[0])
    bought_all = recent_purchase_category(purchases, space.user_ids[all_users], as_of, args.window_days)
    bought = bought_all[rows]
    results: dict[str, Any] = {"champion": _metrics(base, space.relevant, args.k, n_items)}
    gained_all: dict[str, float] = {}
    everyone, _ = model.recommend(space.X, all_users, k=args.candidates)
    for position in positions:
        s = CrossSellSettings(window_days=args.window_days, min_lift=args.min_lift, position=position)
        sold = cross_sell(candidates, args.k, bought, item_category, rules, popular, space.X[rows], s)
        results[f"cross_sell@{position}"] = {
            **_metrics(sold.idx, space.relevant, args.k, n_items),
            "slates_gained_share": round(float(sold.gained.mean()), 4),
            **_displaced_hits(base, sold, space.relevant, args.k),
        }
        whole = cross_sell(everyone, args.k, bought_all, item_category, rules, popular, space.X, s)
        gained_all[f"cross_sell@{position}"] = round(float(whole.gained.mean()), 4)
    payload = {
        "shop": ds.name,
        "champion": config,
        "k": args.k,
        "holdout_days": args.holdout_days,
        "window_days": args.window_days,
        "min_lift": args.min_lift,
        "rules": len(rules),
        "rules_usable": int(((rules["lift"] >= args.min_lift) & (rules["antecedent"] != rules["consequent"])).sum()),
        "eval_users": len(rows),
        "users": int(space.X.shape[0]),
        "users_with_recent_purchase": int(pd.notna(bought_all).sum()),
        "eval_users_with_recent_purchase": int(pd.notna(bought).sum()),
        "fit_seconds": round(fit_stage.seconds, 2),
        "results": results,
        "slates_gained_share_all_users": gained_all,
    }
    out = write_json(args.out, "crosssell.json", payload)
    metric = f"ndcg@{args.k}"
    grouped_bars(
        args.out / "crosssell.png",
        f"{ds.name}: cross-sell vs the champion ({args.holdout_days:g}-day holdout)",
        {name: {metric: r[metric], f"hit_rate@{args.k}": r[f"hit_rate@{args.k}"]} for name, r in results.items()},
        "metric",
    )
    rows_out = [{"variant": name, **r} for name, r in results.items()]
    print(table(rows_out, columns=list(dict.fromkeys(c for r in rows_out for c in r))))
    print(f"slates that gained a cross-sell item, all users: {gained_all}")
    print(f"wrote {out} and {args.out / 'crosssell.png'}")
    return 0
