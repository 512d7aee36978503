"""docker-compose.yml describes the scale-out topology and validates (`docker-compose config`)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

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


@pytest.fixture(scope="module")
def resolved() -> dict:
    exe = shutil.which("docker-compose")
    require_service(exe is not None, "docker-compose (make system-deps installs it)")
    proc = subprocess.run(
        [str(exe), "-f", str(ROOT / "docker-compose.yml"), "config"], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


def test_compose_config_resolves_the_whole_topology(resolved):
    services = resolved["services"]
    assert set(services) == SERVICES
    long_running = SERVICES - {"airflow-init"}
    assert not [s for s in long_running if "healthcheck" not in services[s]]
    airflow = [s for s in services if s.startswith("airflow-") and s != "airflow-db"]
    for s in airflow:
        env = services[s]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
        assert env["INTERESTFLOW_WAREHOUSE"].startswith("postgresql://")
        assert services[s]["build"]["dockerfile"] == "docker/Dockerfile"
    for s in SERVICES - {"airflow-db", "warehouse-db", "redis", "airflow-init"}:
        assert services[s]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"


def test_workers_can_be_scaled(resolved):
    worker = resolved["services"]["airflow-worker"]
    # a fixed container name or host port would make `--scale airflow-worker=N` fail
    assert "container_name" not in worker
    assert "ports" not in worker
    assert "celery" in worker["command"] and "worker" in worker["command"]
