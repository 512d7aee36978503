"""``python -m ml policy list|current|estimates|decisions|override`` — explore/exploit policies."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("policy", help="explore/exploit policies: registry, estimates, gate decisions, overrides")
    s = p.add_subparsers(dest="policy_command", required=True)
    ls = s.add_parser("list", help="known policies and their default parameters")
    ls.set_defaults(func=_list)
    cur = s.add_parser("current", help="the policy that serves now")
    cur.add_argument("--warehouse", help="warehouse URL (default: $INTERESTFLOW_WAREHOUSE or local DuckDB)")
    cur.set_defaults(func=_current)
    est = s.add_parser("estimates", help="off-policy estimates of the latest evaluation (ml.policy_estimates)")
    est.add_argument("--warehouse")
    est.add_argument("--all", action="store_true", help="every evaluation run, not only the latest")
    est.set_defaults(func=_estimates)
    dec = s.add_parser("decisions", help="policy gate decisions (registry, family 'policy')")
    dec.add_argument("--warehouse")
    dec.set_defaults(func=_decisions)
    ov = s.add_parser("override", help="make a policy the serving one by hand (recorded with your reason)")
    ov.add_argument("name", help="policy name, see `python -m ml policy list`")
    ov.add_argument("--params", default="{}", help="JSON object of parameters, e.g. '{\"epsilon\": 0.05}'")
    ov.add_argument("--reason", required=True, help="why the gate is overridden (stored in the registry)")
    ov.add_argument("--actor", default="manual", help="who overrides (stored in the registry)")
    ov.add_argument("--warehouse")
    ov.set_defaults(func=_override)


def _list(args: argparse.Namespace) -> int:
    from ml.explore.defaults import DEFAULT_POLICY, DEFAULT_POLICY_CANDIDATES
    from ml.explore.policies import POLICIES

    defaults = {c["policy"]: c.get("params", {}) for c in DEFAULT_POLICY_CANDIDATES}
    for name, cls in POLICIES.items():
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        mark = " (default)" if name == DEFAULT_POLICY else ""
        print(f"{name}{mark}: {doc}\n    candidate params: {json.dumps(defaults.get(name, {}))}")
    return 0


def _current(args: argparse.Namespace) -> int:
    from ml.tasks.policies import current_policy
    from ml.warehouse import Warehouse

    cur = current_policy(Warehouse.from_env(args.warehouse))
    print(json.dumps(cur, indent=2, default=str))
    return 0


def _estimates(args: argparse.Namespace) -> int:
    from ml.explore import columns as C
    from ml.explore.store import ensure_tables
    from ml.warehouse import Warehouse

    wh = Warehouse.from_env(args.warehouse)
    with wh.connect() as con:
        ensure_tables(wh, con)
        df = wh.query(f"select * from {C.POLICY_ESTIMATES} order by evaluated_at, policy, estimator", None, con)
    if df.empty:
        print("no policy estimates yet (run the evaluate_policies DAG)")
        return 0
    if not args.all:
        df = df[df["run_id"] == df["run_id"].iloc[-1]]
    print(df.to_string(index=False))
    return 0


def _decisions(args: argparse.Namespace) -> int:
    from ml.explore.defaults import POLICY_FAMILY
    from ml.registry import Registry
    from ml.warehouse import Warehouse

    df = Registry(Warehouse.from_env(args.warehouse)).decisions(POLICY_FAMILY)
    print(df.to_string(index=False) if len(df) else "no policy gate decisions yet")
    return 0


def _override(args: argparse.Namespace) -> int:
    from ml.errors import UsageError
    from ml.tasks.policies import override_policy

    try:
        params = json.loads(args.params)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--params is not JSON: {exc}") from None
    if not isinstance(params, dict):
        raise UsageError("--params must be a JSON object, e.g. '{\"epsilon\": 0.05}'")
    try:
        version = override_policy(args.name, params, args.reason, actor=args.actor, warehouse=args.warehouse)
    except ValueError as exc:  # an unknown policy, bad parameters or an empty reason
        raise UsageError(str(exc)) from exc
    print(f"policy {args.name} ({version}) now serves; reason recorded: {args.reason}")
    return 0
