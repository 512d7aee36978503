"""``python -m ml demo``: the main job on the embedded runtime (what ``make demo`` runs)."""

from __future__ import annotations

import argparse
import json

from ml.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="generate a shop and run all DAGs on the embedded runtime")
    p.add_argument("--size", choices=["tiny", "small", "default"], default="small")
    p.add_argument("--days", type=int, default=None, help="simulated shop days after the set-up (default 2)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ml import config

    config.apply_airflow_env()  # before anything imports airflow
    from ml.demo import DEFAULT_DAYS, DemoError, render, run

    days = DEFAULT_DAYS if args.days is None else args.days
    if days < 0:
        raise UsageError(f"--days must be >= 0, got {days}")
    try:
        summary = run(size=args.size, seed=args.seed, days=days)
    except DemoError as exc:
        raise UsageError(str(exc)) from None
    print(json.dumps(summary, indent=2, default=str) if args.json else render(summary))
    return 0
