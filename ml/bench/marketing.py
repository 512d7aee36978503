"""``python -m ml bench marketing --out DIR``: the marketing figures of issue #9.

1. New-item discovery in the simulator (``ml/simulate/marketing.py``): impressions a new item
   needs before its CTR interval is narrower than the graduation width, with and without
   targeting, and the days that takes at the exposure budget.
2. A campaign (``--campaign``, default ``winter_outdoor_sale``) run in the simulator over
   ``--campaign-days`` days with its hashed holdout: uplift in clicks and purchases per user with
   a 95 % bootstrap interval (the same report as ``python -m ml campaign report NAME``).
3. Audience sizes on a synthetic shop (``--audience-size``, default ``default``): generated,
   ingested, built with dbt into a private DuckDB file under DIR, then every audience of
   ``ml/marketing/audiences/`` published; sizes, lookalikes and exclusions.

Writes ``DIR/marketing.json`` and prints the tables.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ml.bench import positive_int
from ml.errors import UsageError

NAME = "marketing"
HELP = "new-item impressions to judgement, a simulated campaign's uplift, audience sizes"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", choices=["tiny", "small", "default"], default="default", help="simulated shop")
    p.add_argument("--users", type=int, default=2000, help="simulated users (0 = all of the shop's)")
    p.add_argument("--ci-width", type=float, default=0.5, help="graduation: CI width relative to the CTR")
    p.add_argument("--slot-probability", type=float, default=0.3, help="new-item slot probability per user/day")
    p.add_argument("--daily-cap", type=int, default=200, help="expected impressions per new item per day")
    p.add_argument("--campaign", default="winter_outdoor_sale")
    p.add_argument("--campaign-days", type=positive_int, default=14)
    p.add_argument("--holdout-share", type=float, default=None, help="override the campaign's holdout share")
    p.add_argument("--audience-size", choices=["tiny", "small", "default", "none"], default="default")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, default=Path("bench-out/marketing"))


def _audiences(size: str, seed: int, out: Path) -> dict[str, Any]:
    from ml.features.dbt import build
    from ml.ingest.landing import ingest_paths
    from ml.shop.generate import write_shop
    from ml.tasks.marketing import publish_audiences
    from ml.warehouse import Warehouse

    shop = out / f"shop-{size}"
    write_shop(shop, size=size, seed=seed)
    db = out / f"audiences-{size}.duckdb"
    db.unlink(missing_ok=True)
    wh = Warehouse(f"duckdb:///{db}")
    ingest_paths([shop], wh, gate=False)
    build(wh, target_path=out / "dbt-target")
    users = wh.query(
        "select count(*) as n, sum(case when marketing_opt_out then 1 else 0 end) as o from marts.user_features"
    )
    rep = publish_audiences(run_id="bench", warehouse=wh.url)
    return {
        "shop": size,
        "users": int(users["n"].iloc[0]),
        "opted_out": int(users["o"].iloc[0]),
        "audiences": rep["audiences"],
        "overlap": rep["overlap"],
    }


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ml.bench.measure import measure, table, write_json
    from ml.marketing.campaigns import load_campaigns
    from ml.marketing.new_items import NewItemBudget, impressions_to_judge
    from ml.marketing.report import UPLIFT_COLUMNS, campaign_report
    from ml.simulate.marketing import new_item_impressions, shift_window, simulate_campaign, summarise_new_items
    from ml.simulate.runner import SimulationSettings, build_world

    campaigns = load_campaigns()
    if args.campaign not in campaigns:
        raise UsageError(
            f"unknown campaign {args.campaign!r}: choose from {sorted(campaigns)} (ml/marketing/campaigns/)"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    payload["settings"].pop("func", None)
    with measure("world") as stage:
        world = build_world(
            SimulationSettings(size=args.size, seed=args.seed, users=args.users or None, days=args.campaign_days)
        )
    print(f"simulated {len(world.users)} users of the {args.size} shop ({stage.seconds:.0f}s to build)", flush=True)

    budget = NewItemBudget(
        slot_probability=args.slot_probability, daily_cap=args.daily_cap, ci_width=args.ci_width, relative=True
    )
    rows = []
    for targeted in (True, False):
        per_item = new_item_impressions(world, replace(budget, targeted=targeted), targeted, seed=args.seed)
        s = summarise_new_items(per_item)
        ctr = s["mean_true_ctr"]
        s["normal_approx_impressions"] = impressions_to_judge(ctr, budget) if ctr and ctr > 0 else None
        rows.append({"targeting": "targeted" if targeted else "untargeted", **s})
    payload["new_items"] = {"ci_width_relative": args.ci_width, "rows": rows}
    print(f"\nnew items: impressions until the CTR 95% CI is narrower than {args.ci_width:.0%} of the CTR")
    print(table(rows))

    camp = campaigns[args.campaign]
    if args.holdout_share is not None:
        camp = replace(camp, holdout_share=args.holdout_share)
    with measure("campaign") as stage:
        outcomes = simulate_campaign(world, camp, args.campaign_days, seed=args.seed)
    rep = campaign_report(shift_window(camp, world.start, args.campaign_days), outcomes)
    rep["simulated_days"] = args.campaign_days
    payload["campaign"] = rep
    print(
        f"\ncampaign {camp.name} in the simulator: {args.campaign_days} days, holdout {camp.holdout_share:.0%}, "
        f"{rep['exposed_users']} exposed users ({stage.seconds:.0f}s)"
    )
    print(table(rep["metrics"], list(UPLIFT_COLUMNS)))

    if args.audience_size != "none":
        with measure("audiences") as stage:
            aud = _audiences(args.audience_size, args.seed, out)
        payload["audiences"] = aud
        arows = [
            {
                "audience": n,
                "size": a["size"],
                "rule_members": a["rule_members"],
                "lookalikes": a["lookalikes"],
                "lookalike_threshold": a["lookalike_threshold"],
                "excluded": ", ".join(f"{k}={v}" for k, v in sorted(a["excluded"].items())),
            }
            for n, a in aud["audiences"].items()
        ]
        print(
            f"\naudiences on the {aud['shop']} shop: {aud['users']} users, {aud['opted_out']} opted out "
            f"({stage.seconds:.0f}s incl. ingest and dbt build)"
        )
        print(table(arows))
    path = write_json(out, "marketing.json", payload)
    print(f"\nwrote {path} and {chart(payload, out)}")
    return 0


def chart(payload: dict[str, Any], out: Path) -> Path:
    """``marketing.png``: the simulated campaign's uplift per user with its 95 % interval."""
    from ml.bench.plots import bars

    rep = payload["campaign"]
    metrics = {m["metric"]: m for m in rep["metrics"]}
    return bars(
        out / "marketing.png",
        f"{rep['campaign']}: uplift per exposed user vs the holdout (95 % intervals)",
        {n: m["uplift"] for n, m in metrics.items()},
        "treatment - holdout, per user",
        intervals={n: (m["ci_low"], m["ci_high"]) for n, m in metrics.items()},
        reference=("no effect", 0.0),
    )
