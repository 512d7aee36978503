"""``python -m ml bench NAME …``: every module in ``ml/bench/`` with a ``NAME`` is a benchmark."""

from __future__ import annotations

import argparse
import importlib
import pkgutil

import ml.bench


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks (print a table, write JSON)")
    s = p.add_subparsers(dest="bench_name", required=True)
    for mod in sorted(pkgutil.iter_modules(ml.bench.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"ml.bench.{mod.name}")
        name = getattr(module, "NAME", None)
        if not name:
            continue
        bp = s.add_parser(name, help=getattr(module, "HELP", None))
        module.add_arguments(bp)
        bp.set_defaults(func=module.run)
