"""Project paths and runtime settings, read from the environment with local-only defaults.

Every default here is for a single laptop (embedded DuckDB, SQLite Airflow metadata) and is
marked as such; a deployment overrides them with environment variables (see README, "Scale out").
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DBT_DIR = PROJECT_ROOT / "dbt"
DAGS_DIR = PROJECT_ROOT / "dags"
PLUGINS_DIR = PROJECT_ROOT / "plugins"


def state_dir() -> Path:
    """Where local state lives (warehouse file, artifacts, landing data). Git-ignored."""
    return Path(os.environ.get("INTERESTFLOW_HOME", PROJECT_ROOT / ".interestflow"))


# the dbt docs that cosmos' plugin serves in the Airflow UI (`python -m ml dbt docs` writes them)
DBT_DOCS_SLUG = "interestflow"
DBT_DOCS_NAME = "dbt Docs (Interestflow)"


def dbt_docs_dir() -> Path:
    return state_dir() / "dbt_docs"


def warehouse_url() -> str:
    """``duckdb:///abs/path.duckdb`` (local default) or ``postgresql://user@host:port/db``."""
    url = os.environ.get("INTERESTFLOW_WAREHOUSE")
    if url:
        return url
    return f"duckdb:///{state_dir() / 'warehouse.duckdb'}"


def artifacts_dir() -> Path:
    return Path(os.environ.get("INTERESTFLOW_ARTIFACTS", state_dir() / "artifacts"))


def landing_dir() -> Path:
    return Path(os.environ.get("INTERESTFLOW_LANDING", state_dir() / "landing"))


@dataclass(frozen=True)
class IngestSettings:
    quarantine_threshold: float = float(os.environ.get("INTERESTFLOW_QUARANTINE_THRESHOLD", "0.05"))
    price_cap: float = float(os.environ.get("INTERESTFLOW_PRICE_CAP", "100000"))
    future_tolerance_minutes: int = int(os.environ.get("INTERESTFLOW_FUTURE_TOLERANCE_MIN", "60"))
    shop_start: str = os.environ.get("INTERESTFLOW_SHOP_START", "2020-01-01T00:00:00Z")


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


def apply_airflow_env(home: Path | None = None, override: bool = False) -> dict[str, str]:
    """Set the local Airflow defaults in ``os.environ`` (existing values win unless override)."""
    env = airflow_env(home)
    for k, v in env.items():
        if override or k not in os.environ or k == "PYTHONPATH":
            os.environ[k] = v
    return env
