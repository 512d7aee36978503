"""``python -m ml bench simulate --days 30 --out DIR``: every policy through the feedback loop.

Runs each policy day by day on the synthetic shop's ground truth (``ml/simulate``) through the
same publish -> feedback -> update functions the DAGs use, then writes ``DIR/simulate.json``
(``{"reward": what the policies learned from (``--reward``), "policies": {name:
{cumulative_clicks, cumulative_purchases, cumulative_revenue, regret, interests_discovered,
coverage, ctr_first_3_days}}, "chosen": {reward: name}}``: the policy each
reward would choose, the one with the most realised clicks, purchases or revenue), the daily curves (``DIR/simulate_daily.csv``), a plot
(``DIR/simulate.png``) and prints a summary table. ``--size``/``--users`` keep it to minutes.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml.bench import policy_names, positive_int

if TYPE_CHECKING:
    from ml.simulate.runner import PolicyRun

NAME = "simulate"
HELP = "simulate every explore/exploit policy on the synthetic shop (clicks, regret, discovery)"
POLICY_ORDER = ["greedy", "epsilon_greedy", "ucb1", "thompson", "linucb", "lin_thompson", "slot_allocator"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--days", type=positive_int, default=30)
    p.add_argument("--size", choices=["tiny", "small", "default"], default="small", help="synthetic shop size")
    p.add_argument("--users", type=int, default=200, help="simulated users (a sample of the shop's; 0 = all)")
    p.add_argument("--k", type=int, default=10, help="slots per slate")
    p.add_argument("--policies", type=policy_names, default=",".join(POLICY_ORDER), help="comma-separated policy names")
    p.add_argument("--n-draws", type=int, default=16, help="Monte Carlo slates per user for propensities")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--reward", choices=["click", "purchase", "revenue"], default="click", help="what the policies learn from"
    )
    p.add_argument("--out", type=Path, default=Path("bench-out/simulate"))


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from ml.bench.measure import measure, table, write_json
    from ml.explore.defaults import DEFAULT_POLICY_CANDIDATES
    from ml.simulate.plot import plot_curves
    from ml.simulate.runner import SimulationSettings, build_world, run_policy

    settings = SimulationSettings(
        size=args.size,
        seed=args.seed,
        users=args.users or None,
        days=args.days,
        k=args.k,
        n_draws=args.n_draws,
        reward=args.reward,
    )
    params = {c["policy"]: c.get("params", {}) for c in DEFAULT_POLICY_CANDIDATES}
    names = args.policies
    with measure("simulate") as stage:
        world = build_world(settings)
        runs = []
        for n in names:
            runs.append(run_policy(world, n, params.get(n, {})))
            print(f"  {n}: {runs[-1].summary} ({runs[-1].seconds:.0f}s)", flush=True)
    chosen = chosen_by_reward(runs)
    payload: dict[str, Any] = {"reward": args.reward, "policies": {r.name: r.summary for r in runs}, "chosen": chosen}
    write_json(args.out, "simulate.json", payload)
    daily = pd.concat([r.daily.assign(policy=r.name) for r in runs], ignore_index=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    daily.to_csv(Path(args.out) / "simulate_daily.csv", index=False)
    png = plot_curves(daily, Path(args.out) / "simulate.png")
    rows = [{"policy": r.name, **r.summary, "seconds": round(r.seconds, 1)} for r in runs]
    print(
        f"simulated {len(world.users)} users of the {args.size} shop for {args.days} days, k={args.k}, "
        f"the policies learning from the {args.reward} reward "
        f"({stage.seconds:.0f}s, peak RSS {stage.peak_rss_mb:.0f} MiB)"
    )
    print(table(rows, floatfmt="{:.4f}"))
    greedy = payload["policies"].get("greedy")
    exploring = {n: s for n, s in payload["policies"].items() if n != "greedy"}
    if greedy and exploring:
        best = max(exploring, key=lambda n: exploring[n]["cumulative_clicks"])
        b = exploring[best]
        print(
            f"best exploring policy {best}: clicks {b['cumulative_clicks']} vs greedy {greedy['cumulative_clicks']}, "
            f"interests discovered {b['interests_discovered']:.3f} vs {greedy['interests_discovered']:.3f}"
        )
    print("chosen by reward (most realised): " + ", ".join(f"{k}: {v}" for k, v in chosen.items()))
    print(f"wrote {Path(args.out) / 'simulate.json'} and {png}")
    return 0


# the realised total each reward (``ml.explore.reward``) measures a simulated policy by
REWARD_TOTALS = {"click": "cumulative_clicks", "purchase": "cumulative_purchases", "revenue": "cumulative_revenue"}


def chosen_by_reward(runs: list[PolicyRun]) -> dict[str, str]:
    """Per reward, the simulated policy with the highest realised total (first in run order on ties)."""
    chosen = {}
    for reward, total in REWARD_TOTALS.items():
        best = max(runs, key=lambda r: r.summary[total])
        chosen[reward] = best.name
    return chosen
