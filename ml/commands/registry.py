"""``python -m ml registry list|show|promote|rollback|decisions``."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from ml.defaults import FAMILY, PRIMARY_METRIC
from ml.errors import MissingInput, UsageError

if TYPE_CHECKING:
    from ml.registry import Registry


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("registry", help="model versions, champions and gate decisions")
    s = p.add_subparsers(dest="registry_command", required=True)
    ls = s.add_parser("list", help="list versions (newest last; * marks the champion)")
    ls.add_argument("--family", default=None)
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    ls.set_defaults(func=_list)
    sh = s.add_parser("show", help="show one version: params, metrics, snapshot, artifact")
    sh.add_argument("version")
    sh.set_defaults(func=_show)
    pr = s.add_parser("promote", help="make a version champion (manual override; recommenders get a smoke load)")
    pr.add_argument("version")
    pr.add_argument("--reason", required=True)
    pr.add_argument("--family", default=FAMILY)
    pr.add_argument("--skip-smoke", action="store_true", help="do not reload the artifact in a fresh process first")
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
    metrics = df["metrics"].map(json.loads)
    df["primary"] = metrics.map(lambda m: m.get(PRIMARY_METRIC))
    df["coverage"] = metrics.map(lambda m: m.get("coverage@10"))
    df["new_user_hr"] = metrics.map(lambda m: m.get("new_user_hit_rate@10"))
    df["champion"] = df["is_champion"].map(lambda b: "*" if b else "")
    df["kib"] = (df["artifact_bytes"] / 1024).round(1)
    cols = ["champion", "version_id", "family", "model_name", "primary", "coverage", "new_user_hr"]
    cols += ["train_seconds", "kib", "snapshot_id", "git_sha", "created_at"]
    if args.json:
        for row in df[cols].to_dict(orient="records"):
            print(json.dumps(row, default=str))
    else:
        print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


def _show(args: argparse.Namespace) -> int:
    from ml.registry import Registry

    print(json.dumps(_get(Registry(), args.version), indent=2, default=str))
    return 0


def _get(reg: Registry, version: str) -> dict[str, Any]:
    """The registry's record of ``version``; a one-line error when there is none."""
    try:
        return reg.get(version)
    except KeyError as exc:
        raise MissingInput(f"{exc.args[0]} (see `python -m ml registry list`)") from None


def _promote(args: argparse.Namespace) -> int:
    from ml.registry import Registry

    reg = Registry()
    _get(reg, args.version)
    details: dict = {}
    if args.family != FAMILY:
        print(f"note: no smoke load for family {args.family!r} (recommender artifacts only)")
    elif not args.skip_smoke:
        from ml.tasks.training import smoke_load

        smoke = smoke_load(args.version, warehouse=reg.wh.url)
        details["smoke_load"] = smoke
        if not (smoke.get("ok") and smoke.get("finite") and smoke.get("explained")):
            print(f"error: smoke load failed, {args.version} not promoted: {smoke}")
            return 3
    champ = reg.champion(args.family)
    reg.set_champion(args.family, args.version, f"manual: {args.reason}", actor="cli")
    reg.record_decision(
        args.family,
        "manual",
        args.version,
        champ["version_id"] if champ else None,
        True,
        f"manual override: {args.reason}",
        details,
    )
    print(f"{args.version} is now champion of {args.family}")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from ml.registry import Registry

    try:
        v = Registry().rollback(args.family, args.reason)
    except ValueError as exc:  # no earlier champion
        raise UsageError(str(exc)) from exc
    print(f"rolled back: {v} is champion of {args.family} again")
    return 0


def _decisions(args: argparse.Namespace) -> int:
    from ml.registry import Registry

    df = Registry().decisions(args.family)
    if df.empty:
        print("no gate decisions yet")
        return 0
    cols = ["decided_at", "family", "run_id", "challenger_version", "champion_version", "promoted", "reason"]
    print(df[cols].to_string(index=False))
    return 0
