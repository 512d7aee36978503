"""``python -m ml publish list|rollback --to VERSION|prune --keep N``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ml.errors import UsageError

if TYPE_CHECKING:
    from ml.warehouse import Warehouse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("publish", help="published serving-table versions")
    s = p.add_subparsers(dest="publish_command", required=True)
    ls = s.add_parser("list", help="kept versions, newest first (current one flagged)")
    rb = s.add_parser("rollback", help="point serving.<name>_current at a kept version, atomically")
    rb.add_argument("--to", required=True, dest="version", help="a version from `publish list`")
    pr = s.add_parser("prune", help="drop all but the newest N versions (never the current one)")
    pr.add_argument("--keep", type=int, required=True)
    for q in (ls, rb, pr):
        q.add_argument("--name", default="recommendations", help="published table name (default recommendations)")
        q.add_argument("--warehouse", default=None, help="warehouse URL (default: INTERESTFLOW_WAREHOUSE)")
    ls.set_defaults(func=_list)
    rb.set_defaults(func=_rollback)
    pr.set_defaults(func=_prune)


def _wh(args: argparse.Namespace) -> Warehouse:
    from ml.warehouse import Warehouse

    return Warehouse.from_env(args.warehouse)


def _list(args: argparse.Namespace) -> int:
    from ml.publish import list_versions

    df = list_versions(args.name, _wh(args))
    print(df.to_string(index=False) if len(df) else f"nothing published as {args.name!r} yet")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from ml.publish import rollback

    try:
        rollback(args.name, args.version, _wh(args))
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    print(f"serving.{args.name}_current now points at {args.version}")
    return 0


def _prune(args: argparse.Namespace) -> int:
    from ml.publish import prune

    try:
        dropped = prune(args.name, args.keep, _wh(args))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(f"dropped {len(dropped)} versions: {', '.join(dropped)}" if dropped else "nothing to drop")
    return 0
