"""``python -m ml bench ope --dataset obd --campaign all --runs 30 --out DIR``.

Estimates one Open Bandit Dataset policy's CTR from the other policy's logs (default: Bernoulli
TS from Random's logs; ``--behavior bts`` runs the reverse) with every estimator, and compares
with the evaluated policy's on-policy CTR. Writes ``DIR/ope.json`` (``ground_truth``, ``chosen``,
``estimators``), ``DIR/ope_details.json`` (settings, the hyper-parameters fixed on the full log,
estimated MSEs, per-run estimates) and prints a table. The chosen estimator follows the rule in
``ml/ope/select.py``; every hyper-parameter (reward model kind and C, switch-DR's tau, DRos's
lambda) is fixed once on the full log and kept in all runs (see ``ml/ope/obd.py``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

NAME = "ope"
HELP = "off-policy estimators on the Open Bandit Dataset (relative error vs on-policy CTR)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", choices=["obd"], default="obd")
    p.add_argument("--campaign", choices=["all", "men", "women"], default="all")
    p.add_argument(
        "--behavior",
        choices=["random", "bts"],
        default="random",
        help="the logging policy whose logs are used; the other one is evaluated",
    )
    p.add_argument(
        "--runs",
        type=int,
        default=30,
        help="bootstrap runs (each refits the reward model; hyper-parameters stay fixed)",
    )
    p.add_argument("--n-sim", type=int, default=1_000_000, help="Monte Carlo slates for BTS's action distribution")
    p.add_argument("--n-bootstrap", type=int, default=200, help="resamples for tuning and choosing on the full log")
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--path", type=Path, help="a local Open Bandit Dataset folder (default: the obp wheel sample)")
    p.add_argument("--out", type=Path, default=Path("bench-out/ope"))


def run(args: argparse.Namespace) -> int:
    from ml.bench.measure import measure, table, write_json
    from ml.data.obd import fetch, prior_path
    from ml.data.wheels import cache_dir
    from ml.ope.obd import run_experiment

    root = fetch(args.path, cache_dir() / "obd")
    with measure("ope") as stage:
        res = run_experiment(
            root,
            prior_path(root),
            campaign=args.campaign,
            behavior=args.behavior,
            runs=args.runs,
            n_sim=args.n_sim,
            n_bootstrap=args.n_bootstrap,
            random_state=args.seed,
        )
    details = res.pop("details")
    details.update({"seconds": round(stage.seconds, 1), "peak_rss_mb": stage.peak_rss_mb})
    write_json(args.out, "ope.json", res)
    write_json(args.out, "ope_details.json", details)
    chart(res, Path(args.out))
    truth = res["ground_truth"]
    rows = []
    for name, r in res["estimators"].items():
        rows.append(
            {
                "estimator": name + (" *" if name == res["chosen"] else ""),
                "settings": details["estimator_labels"].get(name, name),
                "mean_estimate": r["mean_estimate"],
                "rel_error": r["mean_relative_error"],
                "ci_low": r["ci_low"],
                "ci_high": r["ci_high"],
                "covers_truth": r["ci_low"] <= truth <= r["ci_high"],
            }
        )
    print(
        f"OBD campaign={args.campaign}: {details['evaluation_policy']} estimated from {args.behavior} logs "
        f"({details['n_rounds']} rounds, {details['n_actions']} items, {details['len_list']} slots, {args.runs} runs)"
    )
    print(f"ground truth (on-policy CTR of {details['evaluation_policy']}) = {truth:.5f}; * = chosen by the rule")
    print(f"reward model (by CV log-loss): {details['reward_model']}, C={details['reward_model_C']:g}")
    print(table(rows, floatfmt="{:.5f}"))
    print(
        f"wrote {Path(args.out) / 'ope.json'} and ope.png in {stage.seconds:.1f}s (peak RSS {stage.peak_rss_mb:.0f} MiB)"
    )
    return 0


def chart(res: dict[str, Any], out: Path) -> Path:
    """``ope.png``: each estimator's mean estimate with its 95 % interval against the truth."""
    from ml.bench.plots import bars

    est = res["estimators"]
    return bars(
        out / "ope.png",
        "Off-policy estimates of the evaluation policy's CTR (95 % intervals)",
        {n: r["mean_estimate"] for n, r in est.items()},
        "estimated CTR",
        intervals={n: (r["ci_low"], r["ci_high"]) for n, r in est.items()},
        reference=("on-policy truth", res["ground_truth"]),
    )
