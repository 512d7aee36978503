"""``python -m ml bench coldstart --size small --out DIR``: what users who are new in the
time-based holdout window are shown.

The shop's events are cut at the start of the holdout window (the last ``--holdout-days`` before
the newest event). A fresh warehouse gets the shop as it looked at the cut: every item and user
(the users batch) but only the events before it. The features are built, the champion trained
(item kNN) and the slates published by the real path with ``--policy``. Over the users whose
first event falls in the window (new users) it reports:

- ``with_slate``: the share of new users with a published slate. Before cold-start slates
  publishing skipped every user the champion had no history for, so this was 0;
- ``hit_rate@k``: the share of new users who viewed, clicked, carted or bought one of their
  ``k`` published items during the window (before: 0, as they were shown nothing);
- the same hit rate for the users with history, for scale.

Writes ``DIR/coldstart.json``.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from ml.bench import SHOP_SIZES, policy_names, positive_int

NAME = "coldstart"
HELP = "hit rate of users new in the holdout window: cold-start slates vs nothing"
POSITIVE = ("view", "click", "add_to_cart", "purchase")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", choices=SHOP_SIZES, default="small", help="shop size")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--holdout-days", type=positive_int, default=7, help="the window new users appear in")
    p.add_argument("--k", type=positive_int, default=10, help="items per slate")
    p.add_argument("--policy", type=policy_names, default=["greedy"], help="the serving policy (one name)")
    p.add_argument("--workdir", type=Path, help="shop and warehouse (default: DIR/work)")
    p.add_argument("--out", type=Path, required=True)


def shop_at(shop: Path, landing: Path, holdout_days: int) -> tuple[pd.Timestamp, pd.DataFrame, set[str]]:
    """Write the shop as it was at the cut into ``landing`` (items, users, the events before
    it); return the cut, the window's events and the users whose first event is in the window."""
    events = pd.read_parquet(shop / "events.parquet")
    cut = pd.Timestamp(events["event_time"].max()) - pd.Timedelta(days=holdout_days)
    landing.mkdir(parents=True, exist_ok=True)
    for name in ("items", "users"):
        shutil.copyfile(shop / f"{name}.parquet", landing / f"{name}.parquet")
    before = events["event_time"] < cut
    events[before].to_parquet(landing / "events.parquet", index=False)
    first_seen = events.groupby("user_id")["event_time"].min()
    return cut, events[~before], set(first_seen[first_seen >= cut].index.astype(str))


def hit_rates(recs: pd.DataFrame, window: pd.DataFrame, new_users: set[str]) -> dict[str, Any]:
    """Share of users with a slate and share who interacted with a shown item in the window,
    for new users and for the others who were active in the window."""
    shown = set(zip(recs["user_id"].astype(str), recs["item_id"].astype(str), strict=True))
    positive = window[window["event_type"].isin(POSITIVE) & window["item_id"].notna()]
    hit_users = {
        u
        for u, i in zip(positive["user_id"].astype(str), positive["item_id"].astype(str), strict=True)
        if (u, i) in shown
    }
    with_slate = set(recs["user_id"].astype(str))
    cold = set(recs.loc[recs["cold_start"].astype(bool), "user_id"].astype(str)) if "cold_start" in recs else set()
    active = set(window["user_id"].astype(str))
    out: dict[str, Any] = {}
    for group, users in (("new_users", new_users), ("users_with_history", active - new_users)):
        n = len(users)
        out[group] = {
            "users": n,
            "with_slate": round(len(users & with_slate) / n, 4) if n else None,
            "hit_rate": round(len(users & hit_users) / n, 4) if n else None,
            "cold_start_slates": len(users & cold),
        }
    return out


def run(args: argparse.Namespace) -> int:
    from ml.bench.measure import measure, table, write_json
    from ml.errors import UsageError
    from ml.features.dbt import build
    from ml.ingest.landing import ingest_paths
    from ml.shop.generate import write_shop
    from ml.tasks.publishing import publish_recommendations
    from ml.tasks.training import evaluate_and_gate, train_candidate
    from ml.warehouse import Warehouse

    if len(args.policy) != 1:
        raise UsageError(f"--policy takes one policy name, got {', '.join(args.policy)}")
    out: Path = args.out
    work = args.workdir or out / "work"
    shop = work / f"shop-{args.size}-{args.seed}"
    if not (shop / "events.parquet").exists():
        write_shop(shop, size=args.size, seed=args.seed)
    state = work / "state"
    shutil.rmtree(state, ignore_errors=True)
    os.environ.update(
        INTERESTFLOW_HOME=str(state),
        INTERESTFLOW_WAREHOUSE=f"duckdb:///{state / 'warehouse.duckdb'}",
        INTERESTFLOW_ARTIFACTS=str(state / "artifacts"),
    )
    wh = Warehouse.from_env()
    with measure("coldstart") as total:
        cut, window, new_users = shop_at(shop, state / "landing", args.holdout_days)
        ingest_paths([state / "landing"], wh)
        build(wh, target_path=state / "target")
        cand = train_candidate("item_knn", {"neighbours": 50, "shrinkage": 10.0}, run_id="coldstart")
        evaluate_and_gate([cand], run_id="coldstart")
        pub = publish_recommendations(run_id="coldstart", k=args.k, policy=args.policy[0])
        recs = wh.query("select user_id, item_id, cold_start from serving.recommendations_current")
    rates = hit_rates(recs, window, new_users)
    payload = {
        "size": args.size,
        "seed": args.seed,
        "holdout_days": args.holdout_days,
        "cut": str(cut),
        "k": args.k,
        "policy": args.policy[0],
        "published_users": pub["users"],
        "cold_start_users": pub["cold_start_users"],
        "after": rates,
        # before cold-start slates publishing had no row for a user the champion had no history for
        "before": {"new_users": {"users": rates["new_users"]["users"], "with_slate": 0.0, "hit_rate": 0.0}},
        "wall_seconds": round(total.seconds, 1),
    }
    write_json(out, "coldstart.json", payload)
    print(table([{"group": g, **v} for g, v in rates.items()]))
    print(f"wrote {out / 'coldstart.json'} and {chart(payload, out)}")
    return 0


def chart(payload: dict[str, Any], out: Path) -> Path:
    """``coldstart.png``: share with a slate and hit rate, new users before and after, and the
    users with history."""
    from ml.bench.plots import grouped_bars

    after = payload["after"]
    groups = {
        "new users, before": payload["before"]["new_users"],
        "new users, after": after["new_users"],
        "users with history": after["users_with_history"],
    }
    shown = {
        g: {"with a slate": v["with_slate"] or 0.0, f"hit rate@{payload['k']}": v["hit_rate"] or 0.0}
        for g, v in groups.items()
    }
    return grouped_bars(out / "coldstart.png", f"Users new in the last {payload['holdout_days']} days", shown, "share")
