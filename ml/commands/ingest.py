"""``python -m ml ingest PATH…``: load landing files; exit 2 on a bad file, 3 on a blocked batch.

Prints one JSON accounting line per file (``rows == accepted + quarantined``); errors go to
stderr naming the file and the problem (or the failed gate's expectations).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ingest",
        help="load landing batches into the warehouse raw schema",
        description=(
            "Load landing files (CSV, JSON Lines, Parquet). "
            "Exit codes: 0 ok, 2 bad or missing file (or none to load), 3 blocked batch."
        ),
    )
    p.add_argument("paths", nargs="+", type=Path, help="files or folders (CSV, JSON Lines, Parquet)")
    p.add_argument("--warehouse", help="warehouse URL (default: $INTERESTFLOW_WAREHOUSE or local DuckDB)")
    p.add_argument("--quarantine-threshold", type=float, help="block a batch above this share of bad rows (0.05)")
    p.add_argument("--price-cap", type=float, help="prices above this are absurd (default 100000)")
    p.add_argument("--no-gate", action="store_true", help="skip the Great Expectations landing gate")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ml.config import IngestSettings
    from ml.errors import MissingInput
    from ml.ingest.landing import FORMATS, BatchBlocked, LandingFileError, ingest_file, order_paths
    from ml.warehouse import Warehouse

    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        raise MissingInput(f"no such file or folder: {', '.join(missing)}")
    wh = Warehouse.from_env(args.warehouse)
    settings = IngestSettings()
    if args.quarantine_threshold is not None:
        settings = replace(settings, quarantine_threshold=args.quarantine_threshold)
    if args.price_cap is not None:
        settings = replace(settings, price_cap=args.price_cap)
    try:
        paths = order_paths(args.paths)
        if not paths:
            raise MissingInput(
                f"no landing files ({', '.join(FORMATS)}) in {', '.join(map(str, args.paths))}: "
                "write a batch there first (`python -m ml shop generate --out DIR` makes one)"
            )
        for p in paths:
            report = ingest_file(p, wh, settings, gate=not args.no_gate)
            print(json.dumps(report.accounting()), flush=True)
    except LandingFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BatchBlocked as exc:
        print(json.dumps(exc.report.accounting()), flush=True)
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0
