"""``python -m ml airflow standalone|env`` — the local Airflow UI with our DAGs (``make airflow``)."""

from __future__ import annotations

import argparse
import os


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("airflow", help="run Airflow locally with the project's DAGs")
    s = p.add_subparsers(dest="airflow_command", required=True)
    st = s.add_parser("standalone", help="api-server, scheduler, dag-processor, triggerer on 127.0.0.1:8080")
    st.set_defaults(func=_standalone)
    env = s.add_parser("env", help="print the environment the local Airflow uses (shell export lines)")
    env.set_defaults(func=_env)


def _env(args: argparse.Namespace) -> int:
    from ml import config

    for k, v in config.airflow_env().items():
        print(f"export {k}={v!r}")
    return 0


def _standalone(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ml.orchestration import local

    env = local.prepare()
    home = Path(env["AIRFLOW_HOME"])
    os.environ.setdefault("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
    # `airflow standalone` starts its components as `airflow …` sub-processes: find ours first
    bin_dir = str(Path(local.airflow_bin()).parent)
    os.environ["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])
    pw = home / "simple_auth_manager_passwords.json.generated"
    print(
        "\nStarting Airflow on http://127.0.0.1:8080 (Ctrl-C stops it).\n"
        f"Log in as user 'admin'; the password is generated on first start into {pw}\n"
        "(Airflow also prints it below). Trigger any DAG with the ▶ button to get its Params form.\n",
        flush=True,
    )
    os.execv(local.airflow_bin(), [local.airflow_bin(), "standalone"])
    return 0  # pragma: no cover
