"""``python -m ml tags labels|train|backfill|ledger|recall`` — interest tags from the shell."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ml.errors import MissingInput, UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tags", help="item taggers, interest profiles and tag backfills")
    s = p.add_subparsers(dest="tags_command", required=True)

    lab = s.add_parser("labels", help="merchandiser labels (ml.tag_labels)")
    ls = lab.add_subparsers(dest="labels_command", required=True)
    load = ls.add_parser("load", help="load a label file (item_id, tag) as CSV, JSON Lines or Parquet")
    load.add_argument("path", type=Path)
    load.add_argument("--fraction", type=float, default=1.0, help="keep the labels of this share of items")
    load.add_argument("--warehouse")
    load.set_defaults(func=_labels_load)

    tr = s.add_parser("train", help="train one tagger, register it and run the champion gate")
    tr.add_argument("--model", default="transformer", choices=["naive_bayes", "logistic_regression", "transformer"])
    tr.add_argument("--params", default="{}", help="JSON hyper-parameters, e.g. '{\"epochs\": 2}'")
    tr.add_argument("--margin", type=float, default=0.0)
    tr.add_argument("--warehouse")
    tr.set_defaults(func=_train)

    bf = s.add_parser("backfill", help="recompute item tags and profiles for daily partitions")
    bf.add_argument("--start", required=True, help="first day, YYYY-MM-DD")
    bf.add_argument("--end", required=True, help="last day, YYYY-MM-DD (inclusive)")
    bf.add_argument("--version", default="", help="tagger version (default: the champion)")
    bf.add_argument("--batch-size", type=int, default=256)
    bf.add_argument("--dry-run", action="store_true", help="report rows and tag shift, write nothing")
    bf.add_argument(
        "--force", action="store_true", help="recompute partitions already completed, tagging every item again"
    )
    bf.add_argument("--no-current", action="store_true", help="do not switch the *_current views")
    bf.add_argument("--threads", type=int, help="torch threads for transformer inference")
    bf.add_argument("--pause-seconds", type=float, default=0.0, help="pause after each partition (throttle)")
    bf.add_argument("--warehouse")
    bf.set_defaults(func=_backfill)

    lg = s.add_parser("ledger", help="completed partitions per tagger version")
    lg.add_argument("--version", default=None)
    lg.add_argument("--warehouse")
    lg.set_defaults(func=_ledger)

    rc = s.add_parser("recall", help="recall of true interests by the current profiles (synthetic shop)")
    rc.add_argument("--truth", type=Path, required=True, help="_ground_truth/user_interests.parquet")
    rc.add_argument("--warehouse")
    rc.set_defaults(func=_recall)


def _labels_load(args: argparse.Namespace) -> int:
    from ml.tagging.data import LabelFileError, import_labels
    from ml.warehouse import Warehouse

    try:
        out = import_labels(args.path, Warehouse.from_env(args.warehouse), fraction=args.fraction)
    except (LabelFileError, FileNotFoundError, LookupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(out))
    return 0


def _train(args: argparse.Namespace) -> int:
    from ml.tasks.tagging import evaluate_and_gate_tagger, train_tagger

    res = train_tagger(args.model, _json_object(args.params, "--params"), run_id="cli", warehouse=args.warehouse)
    print(json.dumps(res, default=str))
    gate = evaluate_and_gate_tagger([res], run_id="cli", margin=args.margin, warehouse=args.warehouse)
    print(json.dumps(gate, default=str))
    return 0


def _json_object(text: str, flag: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{flag} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{flag} must be a JSON object, e.g. '{{\"epochs\": 2}}'")
    return value


def _backfill(args: argparse.Namespace) -> int:
    from ml.tagging.backfill import partitions_between, plan_backfill, resolve_version
    from ml.tagging.store import switch_current
    from ml.tasks.tagging import backfill_tags
    from ml.warehouse import Warehouse

    try:
        partitions_between(args.start, args.end)
    except ValueError as exc:
        raise UsageError(f"--start/--end: {exc} (give days as YYYY-MM-DD)") from None
    wh = Warehouse.from_env(args.warehouse)
    if args.version:
        try:
            resolve_version(wh, args.version)
        except (KeyError, ValueError) as exc:  # not registered, or not a tagger
            raise UsageError(f"--version: {exc.args[0]} (see `python -m ml registry list --family tagger`)") from None
    plan = plan_backfill(wh, args.start, args.end, args.version or None, args.force).as_dict()
    print(json.dumps({"plan": plan}), flush=True)
    report = backfill_tags(
        plan,
        batch_size=args.batch_size,
        dry_run=args.dry_run,
        run_id="cli",
        force=args.force,
        threads=args.threads,
        pause_seconds=args.pause_seconds,
        warehouse=args.warehouse,
        on_partition=lambda entry: print(json.dumps(entry), flush=True),
    )
    summary = {k: v for k, v in report.items() if k != "partitions"}
    if not args.dry_run and not args.no_current and (report["partitions"] or report["skipped"]):
        summary["current"] = switch_current(wh, report["tagger_version"], "cli")
    print(json.dumps({"done": summary}), flush=True)
    return 0


def _ledger(args: argparse.Namespace) -> int:
    from ml.tagging.store import ledger
    from ml.warehouse import Warehouse

    df = ledger(Warehouse.from_env(args.warehouse), args.version)
    print(df.to_string(index=False) if len(df) else "no completed partitions yet")
    return 0


def _recall(args: argparse.Namespace) -> int:
    import pandas as pd

    from ml.tagging.profiles import interest_recall
    from ml.tagging.store import PROFILES_CURRENT
    from ml.warehouse import Warehouse

    if not args.truth.is_file():
        raise MissingInput(f"--truth {args.truth}: no such file (the shop's _ground_truth/user_interests.parquet)")
    profiles = Warehouse.from_env(args.warehouse).query(f"select * from {PROFILES_CURRENT}")
    print(json.dumps(interest_recall(profiles, pd.read_parquet(args.truth)), indent=2))
    return 0
