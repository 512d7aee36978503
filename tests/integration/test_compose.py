"""docker-compose.yml describes the scale-out topology and validates (`docker-compose config`),
and is closed by default: no secret has a committed fallback, and published ports bind
127.0.0.1 unless INTERESTFLOW_BIND says otherwise."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ml.orchestration.scaleout import COMPOSE_SECRETS, write_compose_secrets
from tests.conftest import ROOT, require_service

pytestmark = pytest.mark.integration

SERVICES = {
    "airflow-db",
    "warehouse-db",
    "redis",
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}


COMPOSE_FILE = ROOT / "docker-compose.yml"
PUBLISHED = {"airflow-apiserver": 8080, "warehouse-db": 5432}


def _config(env_file: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``docker-compose config`` with only ``env_file`` and ``env`` as settings (neither the
    caller's environment nor a developer's own ``.env`` leaks in)."""
    exe = shutil.which("docker-compose")
    require_service(exe is not None, "docker-compose (make system-deps installs it)")
    clean = {k: v for k, v in os.environ.items() if k not in COMPOSE_SECRETS and not k.startswith("INTERESTFLOW_")}
    return subprocess.run(
        [str(exe), "-f", str(COMPOSE_FILE), "--env-file", str(env_file), "config"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**clean, **env},
    )


@pytest.fixture(scope="module")
def env_file(tmp_path_factory) -> Path:
    """``.env.example`` copied and completed by ``make secrets`` (what a user does)."""
    path = tmp_path_factory.mktemp("compose") / ".env"
    path.write_text((ROOT / ".env.example").read_text())
    write_compose_secrets(path)
    return path


@pytest.fixture(scope="module")
def resolved(env_file: Path) -> dict:
    proc = _config(env_file)
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


def _bindings(service: dict) -> list[tuple[str, int]]:
    """(host address, container port) of each published port; "" when it binds every interface."""
    out = []
    for p in service.get("ports", []):
        if isinstance(p, dict):  # the long syntax (docker compose v2)
            out.append((p.get("host_ip", ""), int(p["target"])))
        else:  # "127.0.0.1:8080:8080/tcp" (docker-compose 1.x)
            parts = str(p).split("/")[0].split(":")
            out.append((parts[0] if len(parts) == 3 else "", int(parts[-1])))
    return out


def test_compose_config_resolves_the_whole_topology(resolved):
    services = resolved["services"]
    assert set(services) == SERVICES
    long_running = SERVICES - {"airflow-init"}
    assert not [s for s in long_running if "healthcheck" not in services[s]]
    airflow = [s for s in services if s.startswith("airflow-") and s != "airflow-db"]
    for s in airflow:
        env = services[s]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert "airflow-db-url metadata" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD"]
        assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in env and "AIRFLOW__CELERY__RESULT_BACKEND" not in env
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
        assert "INTERESTFLOW_WAREHOUSE" not in env  # no password in a URL: the warehouse is a Connection
        warehouse = json.loads(env["AIRFLOW_CONN_INTERESTFLOW_WAREHOUSE"])
        assert warehouse["conn_type"] == "postgres" and warehouse["host"] == "warehouse-db"
        assert services[s]["build"]["dockerfile"] == "docker/Dockerfile"
    for s in SERVICES - {"airflow-db", "warehouse-db", "redis", "airflow-init"}:
        assert services[s]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"


def test_workers_can_be_scaled(resolved):
    worker = resolved["services"]["airflow-worker"]
    # a fixed container name or host port would make `--scale airflow-worker=N` fail
    assert "container_name" not in worker
    assert "ports" not in worker
    assert "celery" in worker["command"] and "worker" in worker["command"]


def test_no_secret_has_a_committed_fallback():
    """Every use of a secret in the file is ``${VAR:?message}``: nothing like ``:-admin``."""
    text = COMPOSE_FILE.read_text()
    for var in COMPOSE_SECRETS:
        uses = re.findall(r"\$\{" + re.escape(var) + r"(:?[-?+]?)", text)
        assert uses, f"{var} is not used"
        assert set(uses) == {":?"}, f"{var} has a fallback or is optional: {uses}"
    assert "change-me" not in text and "local-only" not in text


def test_config_fails_naming_each_missing_secret(tmp_path, env_file: Path):
    """Without a secret, docker-compose refuses the file and says which one and how to fix it."""
    lines = env_file.read_text().splitlines()
    for var in COMPOSE_SECRETS:
        missing = tmp_path / f"{var}.env"
        missing.write_text("\n".join(line for line in lines if not line.startswith(f"{var}=")) + "\n")
        proc = _config(missing)
        assert proc.returncode != 0, f"config accepted a missing {var}"
        assert f"set {var} in .env: run make secrets" in proc.stderr


def test_the_example_file_alone_is_refused():
    """``.env.example`` lists every secret, empty: copied as it is, nothing starts."""
    example = (ROOT / ".env.example").read_text()
    listed = {line.split("=")[0] for line in example.splitlines() if "=" in line and not line.startswith("#")}
    assert listed == set(COMPOSE_SECRETS)
    assert not [line for line in example.splitlines() if re.match(r"^[A-Z_]+=.+", line)], "a value is filled in"
    proc = _config(ROOT / ".env.example")
    assert proc.returncode != 0 and "run make secrets" in proc.stderr


def test_the_secrets_given_are_the_ones_used(resolved, env_file: Path, tmp_path: Path):
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if re.match(r"^[A-Z_]+=", line))
    services = resolved["services"]
    for s in ("airflow-apiserver", "airflow-scheduler", "airflow-worker"):
        env = services[s]["environment"]
        for var in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY"):
            assert env[var] == values[var]
        assert json.loads(env["AIRFLOW_CONN_INTERESTFLOW_WAREHOUSE"])["password"] == values["WAREHOUSE_PASSWORD"]
        assert env["AIRFLOW_DB_PASSWORD"] == values["AIRFLOW_DB_PASSWORD"]
        # no URL in the file holds a password
        for secret in (values["WAREHOUSE_PASSWORD"], values["AIRFLOW_DB_PASSWORD"]):
            assert not [v for v in env.values() if f":{secret}@" in str(v)]
    # Airflow builds its database URLs with the commands the file names (its _CMD settings)
    env = services["airflow-scheduler"]["environment"]
    for setting, section, key, scheme in (
        ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD", "database", "sql_alchemy_conn", "postgresql+psycopg2"),
        ("AIRFLOW__CELERY__RESULT_BACKEND_CMD", "celery", "result_backend", "db+postgresql"),
    ):
        argv = env[setting].split()
        assert argv[:3] == ["python", "-m", "ml.orchestration.scaleout"]
        plain = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}  # not the tests' own Airflow
        run_env = {**plain, **{k: str(v) for k, v in env.items() if k.startswith("AIRFLOW_DB_")}}
        got = subprocess.run([sys.executable, *argv[1:]], env=run_env, capture_output=True, text=True, check=False)
        user, password = values.get("AIRFLOW_DB_USER", "airflow"), values["AIRFLOW_DB_PASSWORD"]
        assert got.returncode == 0 and got.stdout == f"{scheme}://{user}:{password}@airflow-db:5432/airflow", got.stderr
        read = subprocess.run(
            [sys.executable, "-m", "airflow", "config", "get-value", section, key],
            env={**run_env, setting: f"{sys.executable} {' '.join(argv[1:])}", "AIRFLOW_HOME": str(tmp_path)},
            capture_output=True,
            text=True,
            check=False,
        )
        assert read.returncode == 0 and read.stdout.strip().endswith(got.stdout), read.stderr[-2000:]
    assert services["airflow-db"]["environment"]["POSTGRES_PASSWORD"] == values["AIRFLOW_DB_PASSWORD"]
    assert services["warehouse-db"]["environment"]["POSTGRES_PASSWORD"] == values["WAREHOUSE_PASSWORD"]
    admin = services["airflow-init"]["environment"]["INTERESTFLOW_AIRFLOW_ADMIN_PASSWORD"]
    assert admin == values["INTERESTFLOW_AIRFLOW_ADMIN_PASSWORD"] and admin != "admin"


def test_published_ports_bind_loopback_unless_opted_in(resolved, env_file: Path):
    published = {s: _bindings(svc) for s, svc in resolved["services"].items() if svc.get("ports")}
    assert published == {s: [("127.0.0.1", port)] for s, port in PUBLISHED.items()}
    proc = _config(env_file, INTERESTFLOW_BIND="0.0.0.0")
    assert proc.returncode == 0, proc.stderr
    opened = yaml.safe_load(proc.stdout)["services"]
    assert {s: _bindings(opened[s]) for s in PUBLISHED} == {s: [("0.0.0.0", p)] for s, p in PUBLISHED.items()}
