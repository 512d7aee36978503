"""``python -m ml assistant ask|index``: the shopping assistant from the command line."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("assistant", help="the shopping assistant: ask a question, refresh the item embeddings")
    s = p.add_subparsers(dest="assistant_command", required=True)
    ask = s.add_parser("ask", help="answer a shopper's question with items from the catalogue")
    ask.add_argument("--user", required=True, help="the shopper's user id (personalises the answer)")
    ask.add_argument("--query", required=True, help='e.g. "waterproof hiking boots under 120"')
    ask.add_argument("--k", type=int, default=5, help="items in the answer (1-50)")
    ask.add_argument("--json", action="store_true", help="print the answer as JSON")
    ask.add_argument("--warehouse", help="warehouse URL (default: INTERESTFLOW_WAREHOUSE)")
    ask.set_defaults(func=_ask)
    report = s.add_parser("report", help="off-policy estimates of the last slot's CTR under other exploration shares")
    report.add_argument("--shares", help="comma-separated exploration shares (default: ml.assistant.ope.SHARES)")
    report.add_argument("--warehouse", help="warehouse URL (default: INTERESTFLOW_WAREHOUSE)")
    report.set_defaults(func=_report)
    index = s.add_parser("index", help="embed the items whose text is new or changed (ml.item_embeddings)")
    index.add_argument("--warehouse", help="warehouse URL (default: INTERESTFLOW_WAREHOUSE)")
    index.set_defaults(func=_index)


def _ask(args: argparse.Namespace) -> int:
    from ml.assistant.query import QuestionError
    from ml.assistant.service import Assistant
    from ml.warehouse import Warehouse

    assistant = Assistant(Warehouse.from_env(args.warehouse))
    try:
        answer = assistant.ask(args.user, args.query, args.k)
    except QuestionError as exc:
        print(f"error: {exc.reason}")
        return 2
    if args.json:
        print(json.dumps(answer.as_dict(), indent=2))
        return 0
    if answer.question.constraints:
        print("understood: " + ", ".join(answer.question.constraints))
    if answer.message:
        print(answer.message)
    for n, item in enumerate(answer.items, 1):
        print(f"{n}. {item['item_id']}  {item['why']}")
    return 0


def _index(args: argparse.Namespace) -> int:
    from ml.assistant.index import refresh_item_embeddings

    out = refresh_item_embeddings(warehouse=args.warehouse)
    print(f"{out['embedded']} of {out['items']} items embedded with {out['model']}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from ml.assistant.ope import SHARES, exploration_estimates
    from ml.bench.measure import table
    from ml.explore import store
    from ml.warehouse import Warehouse

    try:
        shares = SHARES if args.shares is None else tuple(float(v) for v in args.shares.split(",") if v.strip())
    except ValueError:
        print(f"error: --shares must be numbers in [0, 1], got {args.shares!r}")
        return 2
    if not shares or any(not 0 <= s <= 1 for s in shares):
        print(f"error: --shares must be numbers in [0, 1], got {args.shares!r}")
        return 2
    est = exploration_estimates(store.load_feedback(Warehouse.from_env(args.warehouse)), shares)
    if est.empty:
        print("no logged assistant answers with feedback yet (marts.bandit_feedback, policy 'assistant')")
        return 0
    print("the assistant's last slot: estimated click-through by exploration share (SNIPS, 95 % CI)")
    print(table(est.to_dict("records")))
    return 0
