"""``python -m ml campaign list|report NAME``."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("campaign", help="campaign windows and their measured uplift")
    s = p.add_subparsers(dest="campaign_command", required=True)
    ls = s.add_parser("list", help="campaigns defined in ml/marketing/campaigns/")
    ls.set_defaults(func=_list)
    rp = s.add_parser(
        "report",
        help="uplift in clicks, purchases and revenue per user vs the holdout (95%% CI) and ROAS on the spend; "
        "written to ml.campaign_reports",
    )
    rp.add_argument("name")
    rp.add_argument("--no-write", action="store_true", help="print only; do not write ml.campaign_reports")
    rp.add_argument("--warehouse", help="warehouse URL (default: $INTERESTFLOW_WAREHOUSE or local DuckDB)")
    rp.add_argument("--json", action="store_true")
    rp.set_defaults(func=_report)


def _campaigns() -> dict:
    """The campaign specs; a spec that does not validate is the user's error (file and rule)."""
    from ml.errors import UsageError
    from ml.marketing.campaigns import load_campaigns

    try:
        return load_campaigns()
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _list(args: argparse.Namespace) -> int:
    for c in _campaigns().values():
        print(
            f"{c.name:<24} {c.start:%Y-%m-%d} .. {c.end:%Y-%m-%d}  max_share={c.max_share}  holdout={c.holdout_share}"
        )
    return 0


def _report(args: argparse.Namespace) -> int:
    from ml.bench.measure import table
    from ml.errors import UsageError
    from ml.marketing.report import (
        REPORTS,
        UPLIFT_COLUMNS,
        campaign_report,
        per_user_outcomes,
        report_rows,
        write_reports,
    )
    from ml.warehouse import Warehouse

    camps = _campaigns()
    if args.name not in camps:
        raise UsageError(f"no campaign {args.name!r}; known: {', '.join(sorted(camps))} (see `campaign list`)")
    c = camps[args.name]
    wh = Warehouse.from_env(args.warehouse)
    try:
        rep = campaign_report(c, per_user_outcomes(wh, c))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not args.no_write:
        write_reports(wh, report_rows(rep, f"cli-{datetime.now(UTC):%Y%m%dT%H%M%S}"))
    if args.json:
        print(json.dumps(rep, indent=2))
    else:
        print(f"campaign {c.name}: {rep['window'][0]} .. {rep['window'][1]}, {rep['exposed_users']} exposed users")
        print(table(rep["metrics"], list(UPLIFT_COLUMNS)))
        if rep["variants"]:
            print("per marketing copy variant (its treated users against the whole holdout):")
            print(table(rep["variants"], ["copy_variant", *UPLIFT_COLUMNS]))
        revenue = next(m for m in rep["metrics"] if m["metric"] == "revenue")
        print(f"incremental revenue {revenue['incremental']:.2f}", end="")
        if c.spend:
            print(
                f" on spend {c.spend:.2f}: ROAS {revenue['roas']:.2f} [{revenue['roas_low']:.2f}, {revenue['roas_high']:.2f}]"
            )
        else:
            print(" (no spend in the campaign spec: no ROAS)")
        if not args.no_write:
            print(f"written to {REPORTS}")
    return 0
