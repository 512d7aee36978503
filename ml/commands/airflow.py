"""``python -m ml airflow standalone|env`` — the local Airflow UI with our DAGs (``make airflow``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

# seconds the components get to shut down after SIGTERM before they are SIGKILLed
GRACE_S = 20.0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("airflow", help="run Airflow locally with the project's DAGs")
    s = p.add_subparsers(dest="airflow_command", required=True)
    st = s.add_parser("standalone", help="api-server, scheduler, dag-processor, triggerer on 127.0.0.1:8080")
    st.add_argument("--grace", type=float, default=GRACE_S, help="seconds to shut down before SIGKILL")
    st.set_defaults(func=_standalone)
    env = s.add_parser("env", help="print the environment the local Airflow uses (shell export lines)")
    env.set_defaults(func=_env)


def _env(args: argparse.Namespace) -> int:
    from ml import config

    for k, v in config.airflow_env().items():
        print(f"export {k}={v!r}")
    return 0


def components(airflow: str) -> list[tuple[str, list[str]]]:
    """The processes ``airflow standalone`` would start, as (name, argv).

    The scheduler (its LocalExecutor) and the triggerer would each start a log server that
    binds every interface (8793, 8794; Airflow 3.3's ``serve_logs`` has no bind-address
    setting). Here every component shares the machine's log folder and the api-server reads
    task logs from the files, so neither is started (``--skip-serve-logs``)."""
    return [
        ("api-server", [airflow, "api-server"]),  # host and port: AIRFLOW__API__HOST / _PORT
        ("scheduler", [airflow, "scheduler", "--skip-serve-logs"]),
        ("dag-processor", [airflow, "dag-processor"]),
        ("triggerer", [airflow, "triggerer", "--skip-serve-logs"]),
    ]


def password_file(home: Path) -> Path:
    """Where SimpleAuthManager keeps the generated passwords (Airflow's rule)."""
    configured = os.environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
    return Path(configured) if configured else home / "simple_auth_manager_passwords.json.generated"


def private_password_file(path: Path) -> Path:
    """Create ``path`` empty with mode 0600 if missing, make an existing one 0600.

    SimpleAuthManager opens the file with ``open(path, "a+")`` and rewrites it in place, so it
    creates it with the umask's mode (0644: any local user could read the admin password) but
    keeps the mode of a file that exists. An empty file reads as no passwords: the api-server
    generates the missing ones into it and prints them on its first start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600))
    path.chmod(0o600)
    return path


def _standalone(args: argparse.Namespace) -> int:
    from ml.orchestration import children, local

    env = local.prepare()
    home = Path(env["AIRFLOW_HOME"])
    os.environ.setdefault("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
    # Airflow's processes start `airflow …` sub-commands: find ours first
    bin_dir = str(Path(local.airflow_bin()).parent)
    os.environ["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])
    pw = private_password_file(password_file(home))
    host, port = os.environ.get("AIRFLOW__API__HOST", "127.0.0.1"), os.environ.get("AIRFLOW__API__PORT", "8080")
    print(
        f"\nStarting Airflow on http://{host}:{port} (Ctrl-C or SIGTERM stops every component).\n"
        f"Log in as user 'admin'; the password is generated on first start into {pw}\n"
        "(mode 0600; the api-server also prints it below). Trigger any DAG with ▶ to get its Params form.\n",
        flush=True,
    )
    procs = [children.Child(name, argv) for name, argv in components(local.airflow_bin())]
    return children.supervise(procs, env=dict(os.environ), grace_s=args.grace)
