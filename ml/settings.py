"""Interestflow's settings: one typed object, read from ``INTERESTFLOW_*`` environment variables
when needed (pydantic-settings).

``settings()`` reads the environment each time it is called, so a value changed after
``import ml`` counts, and a bad value fails where it is used with an error that names the
variable, what it holds and what is allowed; importing ``ml`` never fails on a setting.
``python -m ml config`` prints the effective settings and where each comes from, with
passwords masked.

Every default is for one laptop (embedded DuckDB, SQLite Airflow metadata, services on
127.0.0.1) and is marked "local-only" where a deployment must override it (README, "Scale out").
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import pandas as pd
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PREFIX = "INTERESTFLOW_"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
LOCAL_PG = "postgresql://postgres@127.0.0.1:5432"  # local-only: the laptop's PostgreSQL, trust auth
LOCAL_REDIS = "redis://127.0.0.1:6379/5"  # local-only: the laptop's Redis, database 5
# settings whose values may carry a password: shown masked
SECRET_URLS = ("warehouse", "pg_server", "celery_broker")


class SettingsError(ValueError):
    """A setting holds a value that is not allowed; the message names the variable."""

    exit_code = 2  # the command line's "fix your input" code


class Settings(BaseSettings):
    """The settings, each from ``INTERESTFLOW_<NAME>`` (the field name in upper case)."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", frozen=True, env_ignore_empty=True)

    # ---- where state lives
    home: Path = Field(PROJECT_ROOT / ".interestflow", description="state folder (local-only default: in the checkout)")
    warehouse: str | None = Field(
        None,
        description="warehouse URL: duckdb:///abs/path.duckdb or postgresql://user@host:port/db (default: <home>/warehouse.duckdb)",
    )
    artifacts: Path | None = Field(None, description="model artifacts (default: <home>/artifacts)")
    landing: Path | None = Field(None, description="landing folder ingest_events reads (default: <home>/landing)")
    data_docs: Path | None = Field(None, description="Great Expectations Data Docs (default: <home>/data_docs)")
    data_docs_mode: Literal["failures", "always", "never"] = Field(
        "failures", description="when gates write a GX Data Docs site"
    )
    # ---- ingest rules
    quarantine_threshold: float = Field(0.05, ge=0, le=1, description="share of bad rows that blocks a batch")
    price_cap: float = Field(100_000, gt=0, description="prices above this are quarantined")
    future_tolerance_min: int = Field(60, ge=0, description="minutes an event may lie in the future")
    shop_start: str = Field("2020-01-01T00:00:00Z", description="events before this are quarantined")
    # ---- serving
    serving_max_age_hours: float = Field(36.0, gt=0, description="watch_serving alerts when the served table is older")
    publish_deadline_minutes: float = Field(
        120.0, gt=0, description="publish_recommendations' deadline alert: minutes after a run is queued"
    )
    policy_reward: Literal["click", "purchase", "revenue"] = Field(
        "click",
        description="what the explore/exploit policies learn from, and evaluate_policies measures them by unless its "
        "reward Param says otherwise",
    )
    assistant_explore_share: float = Field(
        0.1, ge=0, le=1, description="how often the assistant's last slot shows a candidate interest instead"
    )
    assistant_log: Path | None = Field(
        None, description="where the assistant logs the slates it shows (default: <home>/assistant_log)"
    )
    review_model: Literal["tfidf_logreg", "minilm"] = Field(
        "tfidf_logreg", description="the review sentiment model score_reviews fits (python -m ml bench reviews)"
    )
    copy_model: Path | None = Field(
        None,
        description="a local folder holding a Hugging Face causal LM for marketing copy "
        "(default: a small model generate_copy trains on the catalogue, under <artifacts>/copy_lm)",
    )
    warehouse_pool_slots: int = Field(4, ge=1, description="the warehouse pool's slots; default shards on PostgreSQL")
    # ---- the Interestflow page
    ui_refresh_seconds: float = Field(
        5.0,
        ge=0,
        description="at most how often the page re-copies a changed DuckDB warehouse (0: whenever it changed)",
    )
    ui_quiet_seconds: float = Field(2.0, ge=0, description="how long the file must be unchanged before it is copied")
    # ---- scale-out (make scale-up)
    scaleout_home: Path | None = Field(None, description="scale-out state folder (default: <home>/scaleout)")
    pg_server: str = Field(LOCAL_PG, description="PostgreSQL server URL without database (local-only default)")
    airflow_db: str = Field("interestflow_airflow", description="Airflow metadata database on pg_server")
    celery_broker: str = Field(LOCAL_REDIS, description="Celery broker URL (local-only default)")
    celery_key_prefix: str = Field("interestflow", description="prefix of the Celery keys in the broker")
    api_host: str = Field("127.0.0.1", description="the scale-out api-server's address")
    api_port: int = Field(8280, ge=1, le=65535, description="the scale-out api-server's port")
    workers: int = Field(2, ge=1, description="Celery workers")
    worker_concurrency: int = Field(2, ge=1, description="task slots per Celery worker")
    heartbeat_timeout: int = Field(60, ge=1, description="seconds before a dead worker's task is retried")
    node_name: str | None = Field(None, description="this worker's hostname in Airflow (default: the FQDN)")
    airflow_admin_user: str = Field("admin", description="the scale-out Airflow login")
    airflow_admin_password: SecretStr | None = Field(None, description="its password (default: generated)")

    @field_validator("data_docs_mode", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("shop_start")
    @classmethod
    def _timestamp(cls, value: str) -> str:
        try:
            pd.Timestamp(value)
        except (ValueError, TypeError):
            raise ValueError("must be a timestamp such as 2020-01-01T00:00:00Z") from None
        return value

    @field_validator("warehouse", "pg_server", "celery_broker")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and value.strip() == "":
            return None
        return value

    # ---- derived paths (the defaults under home)
    @property
    def warehouse_url(self) -> str:
        return self.warehouse or f"duckdb:///{self.home / 'warehouse.duckdb'}"

    @property
    def artifacts_dir(self) -> Path:
        return self.artifacts or self.home / "artifacts"

    @property
    def landing_dir(self) -> Path:
        return self.landing or self.home / "landing"

    @property
    def assistant_log_dir(self) -> Path:
        return self.assistant_log or self.home / "assistant_log"

    @property
    def data_docs_dir(self) -> Path:
        return self.data_docs or self.home / "data_docs"

    @property
    def scaleout_dir(self) -> Path:
        return self.scaleout_home or self.home / "scaleout"


def env_name(field: str) -> str:
    return PREFIX + field.upper()


def settings(env: Mapping[str, str] | None = None) -> Settings:
    """The settings from ``env`` (default: the process environment, read now). A bad value
    raises :class:`SettingsError` naming each bad variable, its value and what is allowed.

    Validated once per distinct set of ``INTERESTFLOW_*`` values (a change is seen at the next
    call; validating costs milliseconds, looking the variables up microseconds)."""
    source = os.environ if env is None else env
    ours = tuple(sorted((k.upper(), v) for k, v in source.items() if k.upper().startswith(PREFIX) and v != ""))
    return _validated(ours)


@functools.lru_cache(maxsize=32)
def _validated(values: tuple[tuple[str, str], ...]) -> Settings:
    fields = {k[len(PREFIX) :].lower(): v for k, v in values}
    try:
        return Settings.model_validate({k: v for k, v in fields.items() if k in Settings.model_fields})
    except ValidationError as err:
        raise SettingsError(_explain(err, dict(values))) from None


def _explain(err: ValidationError, env: Mapping[str, str]) -> str:
    lines = []
    for e in err.errors():
        field = str(e["loc"][0]) if e["loc"] else "?"
        name = env_name(field)
        shown = "***" if field == "airflow_admin_password" else env.get(name, e.get("input"))
        lines.append(f"{name}={shown!r}: {e['msg']}")
    return "bad setting" + ("s" if len(lines) > 1 else "") + ": " + "; ".join(lines)


def mask_url(url: str | None) -> str | None:
    """``url`` with its password replaced by ``***``."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


def effective(env: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """One row per setting: ``variable``, ``value`` (passwords masked; defaults under ``home``
    resolved) and ``source`` (``env`` or ``default``)."""
    source = os.environ if env is None else env
    s = settings(env)
    derived = {
        "warehouse": s.warehouse_url,
        "artifacts": s.artifacts_dir,
        "landing": s.landing_dir,
        "data_docs": s.data_docs_dir,
        "scaleout_home": s.scaleout_dir,
    }
    rows = []
    for field in Settings.model_fields:
        value: Any = derived.get(field, getattr(s, field))
        if field in SECRET_URLS:
            value = mask_url(str(value) if value is not None else None)
        elif isinstance(value, SecretStr):
            value = "***"
        name = env_name(field)
        rows.append(
            {
                "variable": name,
                "value": "" if value is None else str(value),
                "source": "env" if name in source else "default",
                "description": Settings.model_fields[field].description or "",
            }
        )
    return rows
