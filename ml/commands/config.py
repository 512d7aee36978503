"""``python -m ml config``: the effective settings (``INTERESTFLOW_*``), where each comes from."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="the effective settings (INTERESTFLOW_* variables), passwords masked")
    p.add_argument("--json", action="store_true", help="as JSON (variable -> value)")
    p.set_defaults(func=_show)


def _show(args: argparse.Namespace) -> int:
    from ml.settings import effective

    rows = effective()
    if args.json:
        print(json.dumps({r["variable"]: r["value"] for r in rows}, indent=2))
        return 0
    width = max(len(r["variable"]) for r in rows)
    for r in rows:
        print(f"{r['variable']:<{width}}  {r['value']}  [{r['source']}]  {r['description']}")
    return 0
