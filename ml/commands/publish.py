"""``python -m ml publish list|rollback --to VERSION``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("publish", help="published serving-table versions")
    s = p.add_subparsers(dest="publish_command", required=True)
    ls = s.add_parser("list", help="kept versions, newest first")
    ls.add_argument("--name", default="recommendations")
    ls.set_defaults(func=_list)
    rb = s.add_parser("rollback", help="point <name>_current at a kept version")
    rb.add_argument("--to", required=True, dest="version")
    rb.add_argument("--name", default="recommendations")
    rb.set_defaults(func=_rollback)


def _list(args: argparse.Namespace) -> int:
    from ml.publish import list_versions

    df = list_versions(args.name)
    print(df.to_string(index=False) if len(df) else f"nothing published as {args.name!r} yet")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from ml.publish import rollback

    try:
        rollback(args.name, args.version)
    except KeyError as exc:
        print(f"error: {exc.args[0]}")
        return 2
    print(f"serving.{args.name}_current now points at {args.version}")
    return 0
