"""Run the dbt project (``dbt/``) against the configured warehouse.

The DAG renders the project through astronomer-cosmos; this module is the direct path used by
the CLI, the benchmarks and the tests. Both use :func:`dbt_env` so they build the same target.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from ml import config
from ml.orchestration import children
from ml.warehouse import Warehouse

# dbt's own lines, streamed while a build runs
dbt_log = logging.getLogger("ml.dbt")


def dbt_env(wh: Warehouse | None = None) -> dict[str, str]:
    """Environment variables that point dbt's ``profiles.yml`` at the warehouse."""
    wh = wh or Warehouse.from_env()
    env = {"DBT_SEND_ANONYMOUS_USAGE_STATS": "False", "DO_NOT_TRACK": "1"}
    if wh.kind == "duckdb":
        env.update({"DBT_TARGET": "duckdb", "INTERESTFLOW_DUCKDB_PATH": str(wh.path)})
    else:
        u = urlparse(wh.url)
        env.update(
            {
                "DBT_TARGET": "postgres",
                "PGHOST": u.hostname or "127.0.0.1",
                "PGPORT": str(u.port or 5432),
                "PGUSER": unquote(u.username or "postgres"),
                "PGDATABASE": (u.path or "/interestflow").lstrip("/") or "interestflow",
            }
        )
        if u.password:
            env["PGPASSWORD"] = unquote(u.password)
    return env


def dbt_executable() -> str:
    exe = Path(sys.executable).parent / "dbt"
    return str(exe) if exe.exists() else "dbt"


@dataclass
class DbtResult:
    command: list[str]
    seconds: float
    returncode: int
    output: str


def release_duckdb(project_dir: str | None = None, **_: Any) -> None:
    """Close the DuckDB database that dbt-duckdb keeps open in this process after an in-process
    dbt command (cosmos' ``dbtRunner`` mode), so the next task's process (or the registry's smoke
    load) can open the warehouse file. Cosmos calls it after each dbt task; a no-op on PostgreSQL."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:
        return
    # drops the last reference to dbt-duckdb's environment, whose __del__ closes the database
    DuckDBConnectionManager.close_all_connections()


def run_dbt(
    args: list[str],
    wh: Warehouse | None = None,
    check: bool = True,
    target_path: Path | None = None,
    stream: bool = False,
) -> DbtResult:
    """Run ``dbt <args>`` in the project folder in a subprocess (dbt is not re-entrant).

    ``target_path`` keeps dbt's artefacts and logs in another folder than ``dbt/target`` (tests
    and benchmarks, so they never touch the manifest the DAGs render from). ``stream`` logs
    dbt's lines as they come (``ml.dbt``: "12 of 40 OK created ..." is the progress of a long
    build) besides keeping them in the result.
    """
    env = {**os.environ, **dbt_env(wh)}
    cmd = [dbt_executable(), *args, *_project_args(env["DBT_TARGET"])]
    if target_path is not None:
        cmd += ["--target-path", str(target_path), "--log-path", str(Path(target_path) / "logs")]
    t0 = time.perf_counter()
    if stream:
        proc = children.run_streaming(cmd, lambda line: dbt_log.info("%s", line), cwd=config.DBT_DIR, env=env)
    else:
        proc = children.run(cmd, cwd=config.DBT_DIR, env=env, capture_output=True, text=True)
    res = DbtResult(cmd, time.perf_counter() - t0, proc.returncode, proc.stdout + proc.stderr)
    if check and proc.returncode != 0:
        tail = "\n".join(res.output.splitlines()[-40:])
        raise RuntimeError(f"dbt {' '.join(args)} failed (exit {proc.returncode}):\n{tail}")
    return res


def _project_args(target: str) -> list[str]:
    """The project, profile and target as cosmos' tasks name them: dbt keys its partial-parse
    file on these arguments, so a manifest parsed here is one cosmos' dbt tasks can reuse (else
    each build_features group's first task re-parses from scratch)."""
    folder = str(config.DBT_DIR)
    return ["--project-dir", folder, "--profiles-dir", folder, "--profile", "interestflow", "--target", target]


def parse_in_process(wh: Warehouse | None = None) -> None:
    """``dbt parse`` in this process, as cosmos' tasks run dbt (``dbtRunner``): it writes
    ``dbt/target/manifest.json`` and the partial-parse file those tasks reuse. The embedded
    runtime's set-up uses it: a subprocess would start another interpreter only to import dbt,
    which this process imports for its first dbt task anyway."""
    from dbt.cli.main import dbtRunner

    env = dbt_env(wh)
    try:
        with config.environment(**env):  # profiles.yml reads the locations from the environment
            result = dbtRunner().invoke(["parse", *_project_args(env["DBT_TARGET"])])
    finally:
        release_duckdb()
    if not result.success:
        raise RuntimeError(f"dbt parse failed: {result.exception or 'see the dbt lines above'}")


def build(
    wh: Warehouse | None = None,
    select: str | None = None,
    full_refresh: bool = False,
    target_path: Path | None = None,
    exclude: str | None = None,
) -> DbtResult:
    """``dbt build`` (seeds, models, unit and data tests) of the project or of ``select``; dbt's
    lines are logged as they come."""
    args = ["build"]
    if select:
        args += ["--select", select]
    if exclude:
        args += ["--exclude", exclude]
    if full_refresh:
        args.append("--full-refresh")
    return run_dbt(args, wh, target_path=target_path, stream=True)
