"""The warehouse as the Airflow Connection ``interestflow_warehouse`` (issue #26): ``Warehouse``
and cosmos' dbt profile read it, and its password appears in no URL we show."""

from __future__ import annotations

import json
import subprocess
from urllib.parse import urlparse

import pytest

from ml.warehouse import WAREHOUSE_CONN_ID, Warehouse, WarehouseError, url_from_connection

pytestmark = pytest.mark.integration

PASSWORD = "p@ss/w:rd#1"  # characters a URL must escape; trust auth ignores it


class _Conn:
    def __init__(self, **kw):
        self.conn_type = kw.get("conn_type")
        self.host = kw.get("host")
        self.port = kw.get("port")
        self.login = kw.get("login")
        self.password = kw.get("password")
        self.schema = kw.get("schema")


def test_a_postgres_connection_becomes_a_url_with_its_password_escaped():
    url = url_from_connection(
        _Conn(conn_type="postgres", host="db", port=6432, login="shop", password=PASSWORD, schema="wh")
    )
    u = urlparse(url)
    assert (u.hostname, u.port, u.username, u.path) == ("db", 6432, "shop", "/wh")
    from urllib.parse import unquote

    assert unquote(u.password) == PASSWORD
    assert PASSWORD not in repr(Warehouse(url)) and "***" in repr(Warehouse(url))
    assert url_from_connection(_Conn(conn_type="duckdb", host="/srv/wh.duckdb")) == "duckdb:///srv/wh.duckdb"
    with pytest.raises(WarehouseError, match="conn_type 'mysql': use postgres or duckdb"):
        url_from_connection(_Conn(conn_type="mysql", host="db"))


@pytest.fixture()
def as_connection(pg_warehouse, monkeypatch):
    """The test's PostgreSQL warehouse defined only as the Airflow Connection (JSON form)."""
    u = urlparse(pg_warehouse.url)
    conn = {
        "conn_type": "postgres",
        "host": u.hostname,
        "port": u.port or 5432,
        "login": u.username or "postgres",
        "password": PASSWORD,
        "schema": u.path.lstrip("/"),
    }
    monkeypatch.delenv("INTERESTFLOW_WAREHOUSE")
    monkeypatch.setenv(f"AIRFLOW_CONN_{WAREHOUSE_CONN_ID.upper()}", json.dumps(conn))
    return conn


def test_warehouse_from_env_uses_the_connection(as_connection):
    wh = Warehouse.from_env()
    assert wh.kind == "postgres" and urlparse(wh.url).path.lstrip("/") == as_connection["schema"]
    assert wh.query("select 41 + 1 as answer")["answer"].iloc[0] == 42
    assert PASSWORD not in repr(wh) and PASSWORD not in wh.display


def test_cosmos_renders_the_dbt_profile_from_the_connection_and_dbt_connects(as_connection, tmp_path):
    from cosmos.profiles import PostgresUserPasswordProfileMapping

    from ml import config
    from ml.features.dbt import dbt_executable
    from ml.orchestration.cosmos import profile_config

    profile = profile_config()
    assert isinstance(profile.profile_mapping, PostgresUserPasswordProfileMapping)
    with profile.ensure_profile() as (profiles_yml, env_vars):
        text = profiles_yml.read_text()
        assert PASSWORD not in text  # the password goes to dbt as an environment variable
        done = subprocess.run(
            [
                dbt_executable(),
                "--no-use-colors",
                "debug",
                "--connection",
                "--profiles-dir",
                str(profiles_yml.parent),
                "--project-dir",
                str(config.DBT_DIR),
                "--profile",
                "interestflow",
                "--target",
                "postgres",
            ],
            env={**__import__("os").environ, **env_vars, "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"},
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
    assert done.returncode == 0, done.stdout[-2000:]
    assert "Connection test: [OK connection ok]" in done.stdout
    assert as_connection["schema"] in done.stdout
