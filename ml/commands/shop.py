"""``python -m ml shop generate|vocabulary``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("shop", help="the synthetic shop")
    s = p.add_subparsers(dest="shop_command", required=True)
    g = s.add_parser("generate", help="write a landing batch (items, events, users) and ground truth")
    g.add_argument("--size", choices=["tiny", "small", "default", "large"], default="tiny")
    g.add_argument("--seed", type=int, default=7)
    g.add_argument("--out", type=Path, required=True)
    g.add_argument("--format", choices=["parquet", "csv", "jsonl"], default="parquet")
    g.set_defaults(func=_generate)
    v = s.add_parser("vocabulary", help="print the tag vocabulary as CSV (the dbt seed)")
    v.set_defaults(func=_vocabulary)


def _generate(args: argparse.Namespace) -> int:
    from ml.shop.generate import write_shop

    counts = write_shop(args.out, size=args.size, seed=args.seed, fmt=args.format)
    print(json.dumps({"out": str(args.out), "size": args.size, "seed": args.seed, "rows": counts}))
    return 0


def _vocabulary(args: argparse.Namespace) -> int:
    from ml.shop.taxonomy import vocabulary_csv

    print(vocabulary_csv(), end="")
    return 0
