"""``python -m ml dbt parse|docs|freshness``: the data engineer's edit loop on the dbt project.

* ``parse`` re-parses ``dbt/`` into ``dbt/target/manifest.json``, which cosmos renders the
  build_features tasks from: a running Airflow shows a new or renamed model on its DAG
  processor's next pass (``min_file_process_interval``, 30 s by default).
* ``docs`` runs ``dbt docs generate`` into ``$INTERESTFLOW_HOME/dbt_docs``, which cosmos' plugin
  serves in the Airflow UI (Browse > dbt Docs (Interestflow)): models, tests, sources with their
  freshness rules, and the exposures (what ml/, the serving tables and the page read).
* ``freshness`` runs ``dbt source freshness``: exit 1 when a source is past its error age.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ml.warehouse import Warehouse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dbt", help="parse the dbt project for Airflow, build its docs, check source freshness")
    p.add_argument("--warehouse", help="warehouse URL (default: $INTERESTFLOW_WAREHOUSE or local DuckDB)")
    s = p.add_subparsers(dest="dbt_command", required=True)
    s.add_parser("parse", help="re-parse dbt/ so a running Airflow renders the current models").set_defaults(
        func=_parse
    )
    s.add_parser("docs", help="dbt docs generate, served in the Airflow UI by cosmos").set_defaults(func=_docs)
    s.add_parser("freshness", help="dbt source freshness of the raw landing tables").set_defaults(func=_freshness)


def _warehouse(args: argparse.Namespace) -> Warehouse:
    from ml.warehouse import Warehouse

    return Warehouse.from_env(args.warehouse)


def _parse(args: argparse.Namespace) -> int:
    from ml.features.dbt import run_dbt

    res = run_dbt(["parse"], _warehouse(args))
    print(f"parsed dbt/ in {res.seconds:.1f} s: dbt/target/manifest.json (cosmos renders build_features from it)")
    return 0


def _docs(args: argparse.Namespace) -> int:
    from ml import config
    from ml.features.dbt import run_dbt

    out = config.dbt_docs_dir()
    run_dbt(["docs", "generate"], _warehouse(args), target_path=out)
    print(f"wrote {out / 'index.html'}: in the Airflow UI under Browse > {config.DBT_DOCS_NAME}")
    return 0


def _freshness(args: argparse.Namespace) -> int:
    from ml import config
    from ml.errors import MissingInput
    from ml.features.dbt import run_dbt

    wh = _warehouse(args)
    with wh.connect(read_only=True) as con:
        if not wh.table_exists(con, "raw", "events"):
            raise MissingInput(
                f"no raw.events in {wh.display} yet: "
                "load landing files first (`python -m ml ingest PATH…` or the ingest_events DAG)"
            )
    res = run_dbt(["source", "freshness"], wh, check=False, target_path=config.state_dir() / "dbt")
    lines = [line for line in res.output.splitlines() if "freshness of" in line or "ERROR" in line]
    print("\n".join(lines) or res.output[-2000:])
    return 0 if res.returncode == 0 else 1
