"""``python -m ml bench loop --size small --days 14 --out DIR``: the loop through the real DAGs.

Runs the living shop (``ml.simulate.living``: set-up, then ``--days`` simulated days, every DAG
for real on the embedded runtime) twice on the same shop, users and seeds, each arm in its own
state folder (warehouse, artifacts, landing batches):

* ``greedy``: every publish serves ``greedy`` (the ``policy`` Param pinned);
* ``gated``: every publish serves whatever the policy gate promoted from the daily OPE.

Writes ``DIR/loop.json``: ``arms.<arm>`` with ``cumulative_clicks``, ``cumulative_purchases``,
``interests_discovered`` (the last day's share of users' true interests that got a click) and
``daily`` (``day``, ``policy``, ``impressions``, ``clicks``, ``ctr`` ...); ``ope_calibration``:
on how many days the 95 % next-day interval that ``evaluate_policies`` gave for the policy served
next (``next_low``-``next_high``, ``ml.ope.forecast``) carried the click-through rate that policy
then realised (``covered`` of ``days``), how often the estimate's own interval (``ci_low``-
``ci_high``, about the window's average, not one day) did (``covered_by_estimate_interval``),
and the mean relative error of the estimate (and of the forecast ``next_estimate``, the estimate
moved by the logged trend); ``peak_rss_mb`` and ``wall_seconds``. ``DIR/loop.png``
draws the daily CTR and the interests discovered per arm.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from ml.bench import positive_int
from ml.errors import UsageError
from ml.tasks.policies import ESTIMATE_KEYS

NAME = "loop"
HELP = "the explore/exploit loop through the real DAGs: greedy vs the policy gate, OPE calibration"
ARMS = ("greedy", "gated")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", choices=["tiny", "small", "default"], default="small")
    p.add_argument("--days", type=positive_int, default=14)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--visit-share", type=float, default=0.3, help="share of users visiting each day")
    p.add_argument(
        "--conf",
        default="{}",
        help='extra run conf per DAG id as JSON, e.g. \'{"retrain_models": {"candidates": [...]}}\' '
        "(default: the DAGs' production Params)",
    )
    p.add_argument("--arms", default=",".join(ARMS), help="comma-separated subset of: " + ", ".join(ARMS))
    p.add_argument("--out", type=Path, required=True)


def arm_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """An arm's totals and daily rows from the living shop's day reports (day 0 excluded)."""
    days = [r for r in rows if r.get("day")]
    daily = [
        {
            "day": r["day"],
            "date": r["date"],
            "policy": r["policy"],
            "impressions": r["impressions"],
            "clicks": r["clicks"],
            "ctr": r["ctr"],
            "ctr_exploration": r["ctr_exploration"],
            "ctr_exploitation": r["ctr_exploitation"],
            "purchases": r["purchases"],
            "interests_discovered": r["interests_discovered"],
            "policy_champion_after": r.get("policy_gate", {}).get("champion"),
            "promoted": bool(r.get("policy_gate", {}).get("promoted")),
        }
        for r in days
    ]
    return {
        "cumulative_clicks": sum(d["clicks"] for d in daily),
        "cumulative_purchases": sum(d["purchases"] for d in daily),
        "interests_discovered": daily[-1]["interests_discovered"] if daily else 0.0,
        "daily": daily,
    }


def served_estimate(gate: dict[str, Any], label: str) -> dict[str, Any] | None:
    """What ``evaluate_policies`` said about the policy ``label`` in a day's gate decision:
    ``{estimator, estimate, ci_low, ci_high, next_low, next_high}``, None when it did not
    evaluate it."""
    details = gate.get("details") or {}
    cur = details.get("current") or {}
    found = cur if cur.get("label") == label else (details.get("candidates") or {}).get(label)
    return {k: found[k] for k in ESTIMATE_KEYS if k in found} if found else None


def ope_calibration(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Day d's evaluation against day d + 1's realised CTR of the policy served then.

    The policy served on day d + 1 is the one whose label the day's published slates carry; its
    estimate is looked up in day d's gate decision (the evaluation that ran before that publish)."""
    by_day = {r["day"]: r for r in rows if r.get("day")}
    checks = []
    for day, r in sorted(by_day.items()):
        nxt = by_day.get(day + 1)
        if nxt is None or not nxt["impressions"]:
            continue
        label = nxt.get("policy_label") or ""
        est = served_estimate(r.get("policy_gate", {}), label)
        if est is None:
            continue
        realised = nxt["clicks"] / nxt["impressions"]
        checks.append(
            {
                "day": day,
                "policy": label,
                **est,
                "realised_ctr": round(realised, 5),
                "covered": est["next_low"] <= realised <= est["next_high"],
                "covered_by_estimate_interval": est["ci_low"] <= realised <= est["ci_high"],
                "relative_error": abs(est["estimate"] - realised) / realised if realised else None,
                "next_relative_error": (
                    abs(est["next_estimate"] - realised) / realised if realised and "next_estimate" in est else None
                ),
            }
        )
    return {**calibration_totals(checks), "checks": checks}


def calibration_totals(checks: list[dict[str, Any]]) -> dict[str, Any]:
    """How many checks were covered, their share and the mean relative error."""
    errors = [c["relative_error"] for c in checks if c["relative_error"] is not None]
    forecast = [c["next_relative_error"] for c in checks if c.get("next_relative_error") is not None]
    return {
        "days": len(checks),
        "covered": sum(c["covered"] for c in checks),
        "covered_share": round(sum(c["covered"] for c in checks) / len(checks), 3) if checks else None,
        "covered_by_estimate_interval": sum(c["covered_by_estimate_interval"] for c in checks),
        "mean_relative_error": round(sum(errors) / len(errors), 4) if errors else None,
        "mean_relative_error_of_forecast": round(sum(forecast) / len(forecast), 4) if forecast else None,
    }


def plot(arms: dict[str, dict[str, Any]], path: Path) -> Path:
    """Daily CTR and interests discovered per arm, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    for name, arm in arms.items():
        days = [d["day"] for d in arm["daily"]]
        axes[0].plot(days, [d["ctr"] for d in arm["daily"]], marker="o", label=name)
        axes[1].plot(days, [d["interests_discovered"] for d in arm["daily"]], marker="o", label=name)
    for ax, title, ylabel in (
        (axes[0], "daily click-through rate of the published slates", "clicks / impressions"),
        (axes[1], "true interests discovered", "share of each user's interests clicked"),
    ):
        ax.set_title(title)
        ax.set_xlabel("simulated day")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run(args: argparse.Namespace) -> int:
    from ml import config
    from ml.bench.measure import measure, peak_rss_mb_lifetime, table, write_json
    from ml.orchestration import local
    from ml.shop.generate import write_shop
    from ml.simulate.living import LivingShop, LoopSettings

    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = sorted(set(arms) - set(ARMS))
    if unknown or not arms:
        raise UsageError(f"unknown arms {unknown}; choose from {', '.join(ARMS)}")
    try:
        conf = json.loads(args.conf)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--conf is not JSON: {exc}") from None
    out = Path(args.out).resolve()
    shop_dir = out / f"{args.size}-seed{args.seed}"
    if not (shop_dir / "events.parquet").exists():
        write_shop(shop_dir, size=args.size, seed=args.seed)
    # one Airflow metadata DB for both arms (runs are told apart by run id); one state folder each
    os.environ["AIRFLOW_HOME"] = str(out / "airflow")
    config.apply_airflow_env(override=True)
    os.environ.pop("INTERESTFLOW_WAREHOUSE", None)
    results: dict[str, dict[str, Any]] = {}
    reports: dict[str, list[dict[str, Any]]] = {}
    with measure("loop") as total:
        for arm in arms:
            os.environ["INTERESTFLOW_HOME"] = str(out / arm)
            os.environ.pop("INTERESTFLOW_ARTIFACTS", None)
            local.prepare()
            settings = LoopSettings(
                size=args.size,
                seed=args.seed,
                days=args.days,
                visit_share=args.visit_share,
                policy="greedy" if arm == "greedy" else "",
                conf=conf,
            )
            with measure(arm) as stage:
                shop = LivingShop(shop_dir, settings)
                shop.run()
            reports[arm] = shop.reports()
            results[arm] = arm_summary(reports[arm]) | {"wall_seconds": round(stage.seconds, 1)}
            print(f"{arm}: {json.dumps({k: v for k, v in results[arm].items() if k != 'daily'})}", flush=True)
    calibration = {arm: ope_calibration(rows) for arm, rows in reports.items()}
    pooled = [c for arm in arms for c in calibration[arm]["checks"]]
    payload = {
        "size": args.size,
        "days": args.days,
        "seed": args.seed,
        "visit_share": args.visit_share,
        "conf": conf,
        "arms": results,
        "ope_calibration": {**calibration_totals(pooled), "by_arm": calibration},
        "peak_rss_mb": round(max(total.peak_rss_mb, peak_rss_mb_lifetime()), 1),
        "wall_seconds": round(total.seconds, 1),
    }
    if "greedy" in results and "gated" in results and results["greedy"]["cumulative_clicks"]:
        g, q = results["greedy"], results["gated"]
        payload["gated_vs_greedy"] = {
            "clicks_gain": round(q["cumulative_clicks"] / g["cumulative_clicks"] - 1, 4),
            "more_interests_discovered": q["interests_discovered"] > g["interests_discovered"],
        }
    write_json(out, "loop.json", payload)
    plot(results, out / "loop.png")
    print(table([{"arm": a, **{k: v for k, v in r.items() if k != "daily"}} for a, r in results.items()]))
    print(json.dumps({k: v for k, v in payload.items() if k not in ("arms", "ope_calibration")}, default=str))
    print(json.dumps({k: v for k, v in payload["ope_calibration"].items() if k != "by_arm"}))
    print(f"wrote {out / 'loop.json'} and {out / 'loop.png'}")
    return 0
