"""Project paths, the state folders the settings point at, and the local Airflow environment.

The ``INTERESTFLOW_*`` settings themselves are :mod:`ml.settings` (typed, read when needed);
the functions here are the paths every module asks for. Every default is for a single laptop
(embedded DuckDB, SQLite Airflow metadata) and is marked as such; a deployment overrides them
with environment variables (see README, "Scale out").
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ml.settings import PROJECT_ROOT, settings

DBT_DIR = PROJECT_ROOT / "dbt"
DAGS_DIR = PROJECT_ROOT / "dags"
PLUGINS_DIR = PROJECT_ROOT / "plugins"


def state_dir() -> Path:
    """Where local state lives (warehouse file, artifacts, landing data). Git-ignored."""
    return settings().home


# the dbt docs that cosmos' plugin serves in the Airflow UI (`python -m ml dbt docs` writes them)
DBT_DOCS_SLUG = "interestflow"
DBT_DOCS_NAME = "dbt Docs (Interestflow)"


def dbt_docs_dir() -> Path:
    return state_dir() / "dbt_docs"


def warehouse_url() -> str:
    """``duckdb:///abs/path.duckdb`` (local default) or ``postgresql://user@host:port/db``."""
    return settings().warehouse_url


def artifacts_dir() -> Path:
    return settings().artifacts_dir


def landing_dir() -> Path:
    return settings().landing_dir


@dataclass(frozen=True)
class IngestSettings:
    """The ingest rules; each field defaults to its setting, read when the object is made."""

    quarantine_threshold: float = field(default_factory=lambda: settings().quarantine_threshold)
    price_cap: float = field(default_factory=lambda: settings().price_cap)
    future_tolerance_minutes: int = field(default_factory=lambda: settings().future_tolerance_min)
    shop_start: str = field(default_factory=lambda: settings().shop_start)


# Local-only Airflow defaults: SQLite metadata under the project, telemetry off, no examples.
def airflow_env(home: Path | None = None) -> dict[str, str]:
    home = home or Path(os.environ.get("AIRFLOW_HOME", PROJECT_ROOT / ".airflow"))
    # a port set by the user moves the base URL the task processes call with it
    port = os.environ.get("AIRFLOW__API__PORT", "8080")
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS_DIR),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
        "SCARF_ANALYTICS": "false",
        "DO_NOT_TRACK": "1",
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        # cosmos' cache (dbt partial-parse files) per state folder, not the machine-wide
        # /tmp/cosmos: two Interestflow environments on one machine (a demo while tests run)
        # overwrote each other's and every dbt task then parsed the project from scratch
        "AIRFLOW__COSMOS__CACHE_DIR": str(state_dir() / "cosmos_cache"),
        # cosmos' plugin serves `python -m ml dbt docs` output under Browse in the Airflow UI
        "AIRFLOW__COSMOS__DBT_DOCS_PROJECTS": json.dumps(
            {DBT_DOCS_SLUG: {"dir": str(dbt_docs_dir()), "index": "index.html", "name": DBT_DOCS_NAME}}
        ),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__PORT": port,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p),
    }


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` for the block, then put back what was there (or nothing)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def apply_airflow_env(home: Path | None = None, override: bool = False) -> dict[str, str]:
    """Set the local Airflow defaults in ``os.environ`` (existing values win unless override)."""
    env = airflow_env(home)
    for k, v in env.items():
        if override or k not in os.environ or k == "PYTHONPATH":
            os.environ[k] = v
    return env
