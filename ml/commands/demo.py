"""``python -m ml demo``: the main job on the embedded runtime (what ``make demo`` runs)."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="generate a shop and run all DAGs on the embedded runtime")
    p.add_argument("--size", choices=["tiny", "small", "default", "large"], default="default")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ml import config

    config.apply_airflow_env()  # before anything imports airflow
    from ml.demo import render, run

    summary = run(size=args.size, seed=args.seed)
    print(json.dumps(summary, indent=2, default=str) if args.json else render(summary))
    return 0
