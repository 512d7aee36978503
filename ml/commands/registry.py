"""``python -m ml registry list|show|promote|rollback``."""

from __future__ import annotations

import argparse
import json

from ml.defaults import FAMILY


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("registry", help="model versions, champions and gate decisions")
    s = p.add_subparsers(dest="registry_command", required=True)
    ls = s.add_parser("list", help="list versions")
    ls.add_argument("--family", default=None)
    ls.set_defaults(func=_list)
    sh = s.add_parser("show", help="show one version")
    sh.add_argument("version")
    sh.set_defaults(func=_show)
    pr = s.add_parser("promote", help="make a version champion (manual override)")
    pr.add_argument("version")
    pr.add_argument("--reason", required=True)
    pr.add_argument("--family", default=FAMILY)
    pr.set_defaults(func=_promote)
    rb = s.add_parser("rollback", help="restore the previous champion")
    rb.add_argument("--family", default=FAMILY)
    rb.add_argument("--reason", default="manual rollback")
    rb.set_defaults(func=_rollback)
    dc = s.add_parser("decisions", help="gate decisions")
    dc.add_argument("--family", default=None)
    dc.set_defaults(func=_decisions)


def _list(args: argparse.Namespace) -> int:
    from ml.registry import Registry

    df = Registry().versions(args.family)
    if df.empty:
        print("no model versions yet")
        return 0
    df["primary"] = df["metrics"].map(lambda m: json.loads(m).get("ndcg@10"))
    cols = ["version_id", "family", "model_name", "primary", "snapshot_id", "git_sha", "created_at", "is_champion"]
    print(df[cols].to_string(index=False))
    return 0


def _show(args: argparse.Namespace) -> int:
    from ml.registry import Registry

    print(json.dumps(Registry().get(args.version), indent=2, default=str))
    return 0


def _promote(args: argparse.Namespace) -> int:
    from ml.registry import Registry

    reg = Registry()
    reg.set_champion(args.family, args.version, f"manual: {args.reason}", actor="cli")
    reg.record_decision(args.family, "manual", args.version, None, True, f"manual override: {args.reason}", {})
    print(f"{args.version} is now champion of {args.family}")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from ml.registry import Registry

    v = Registry().rollback(args.family, args.reason)
    print(f"rolled back: {v} is champion of {args.family} again")
    return 0


def _decisions(args: argparse.Namespace) -> int:
    from ml.registry import Registry

    df = Registry().decisions(args.family)
    print(df.to_string(index=False) if len(df) else "no gate decisions yet")
    return 0
