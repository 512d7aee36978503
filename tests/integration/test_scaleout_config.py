"""The scale-out topology's configuration, without starting anything: environment variables in,
one consistent Airflow environment out."""

from __future__ import annotations

import stat

import pytest

from ml.orchestration import scaleout
from ml.orchestration.scaleout import (
    COMPOSE_SECRETS,
    AirflowClient,
    Topology,
    Worker,
    airflow_argv,
    airflow_db_url,
    node_name,
    write_compose_secrets,
)

pytestmark = pytest.mark.unit


@pytest.fixture()
def topo(tmp_path, monkeypatch: pytest.MonkeyPatch) -> Topology:
    for var in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("INTERESTFLOW_AIRFLOW_ADMIN_PASSWORD", raising=False)
    monkeypatch.setenv("INTERESTFLOW_SCALEOUT_HOME", str(tmp_path / "so"))
    monkeypatch.setenv("INTERESTFLOW_PG_SERVER", "postgresql://etl:pw@db.internal:6543")
    monkeypatch.setenv("INTERESTFLOW_WAREHOUSE", "postgresql://etl:pw@db.internal:6543/shop_wh")
    monkeypatch.setenv("INTERESTFLOW_CELERY_BROKER", "redis://cache.internal:6380/3")
    monkeypatch.setenv("INTERESTFLOW_API_PORT", "9999")
    monkeypatch.setenv("INTERESTFLOW_WORKERS", "3")
    monkeypatch.setenv("INTERESTFLOW_WORKER_CONCURRENCY", "4")
    return Topology.from_env()


def test_environment_variables_configure_the_topology(topo: Topology, tmp_path):
    assert topo.state == tmp_path / "so"
    assert topo.warehouse_db == "shop_wh"
    assert topo.metadata_url == "postgresql://etl:pw@db.internal:6543/interestflow_airflow"
    assert [w.name for w in topo.workers] == ["worker1", "worker2", "worker3"]
    assert {w.concurrency for w in topo.workers} == {4}
    assert topo.api_url == "http://127.0.0.1:9999"


def test_every_process_shares_one_celery_postgres_environment(topo: Topology):
    env = topo.env()
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == (
        "postgresql+psycopg2://etl:pw@db.internal:6543/interestflow_airflow"
    )
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://cache.internal:6380/3"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:9999/execution/"
    assert env["INTERESTFLOW_WAREHOUSE"] == "postgresql://etl:pw@db.internal:6543/shop_wh"
    assert env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "True"
    assert env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] == "ml.orchestration.scaleout.node_name"
    # secrets are generated once, kept private, and identical for every component and restart
    again = topo.env()
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY"):
        assert env[key] and env[key] == again[key]
    mode = stat.S_IMODE((topo.state / "secrets.json").stat().st_mode)
    assert mode == 0o600


def test_secrets_from_the_environment_win(topo: Topology, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "from-the-vault")
    assert topo.env()["AIRFLOW__API_AUTH__JWT_SECRET"] == "from-the-vault"


def test_each_worker_is_its_own_celery_node_and_task_host(topo: Topology, monkeypatch: pytest.MonkeyPatch):
    workers = [(name, argv, extra) for name, argv, extra in topo.commands() if "celery" in argv]
    assert [extra["INTERESTFLOW_NODE_NAME"] for _, _, extra in workers] == ["worker1", "worker2", "worker3"]
    assert [argv[argv.index("--celery-hostname") + 1] for _, argv, _ in workers] == [
        "worker1@%h",
        "worker2@%h",
        "worker3@%h",
    ]
    names = [name for name, _, _ in topo.commands()]
    assert names[:4] == ["api-server", "scheduler", "dag-processor", "triggerer"]
    # no process serves logs (Airflow's log servers bind every interface); the scheduler of a
    # CeleryExecutor starts none
    argv = {name: a for name, a, _ in topo.commands()}
    assert all("--skip-serve-logs" in argv[n] for n in ["triggerer", *(w.name for w in topo.workers)])
    monkeypatch.setenv("INTERESTFLOW_NODE_NAME", "worker2")
    assert node_name() == "worker2"


def test_invalid_topologies_are_refused(tmp_path):
    with pytest.raises(ValueError, match="PostgreSQL"):
        Topology(state=tmp_path, warehouse_url="duckdb:///x.duckdb")
    with pytest.raises(ValueError, match="distinct"):
        Topology(state=tmp_path, workers=(Worker("w"), Worker("w")))


def test_the_celery_executor_loads_with_the_pinned_celery():
    """The Celery provider imports ``retry`` from ``celery.backends.database`` (gone in Celery
    5.7): with the pinned Celery, the executor's modules load in a plain ``airflow`` process."""
    import subprocess

    code = (
        "from airflow.providers.celery.executors import celery_executor_utils as u; "
        "from celery.backends.database import retry; assert u.retry is retry; print('loaded')"
    )
    argv = airflow_argv("version")
    out = subprocess.run([argv[0], "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0 and out.stdout.splitlines()[-1] == "loaded", out.stderr[-2000:]
    version = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert version.returncode == 0 and version.stdout.strip().startswith("3."), version.stderr[-2000:]


def test_tied_processes_stop_when_their_starter_dies(tmp_path):
    import subprocess
    import sys
    import time

    import psutil

    pid_file = tmp_path / "child.pid"
    starter = (
        "import subprocess, sys\n"
        "from ml.orchestration.children import die_with_parent\n"
        "p = subprocess.Popen(['sleep', '120'], start_new_session=True, preexec_fn=die_with_parent())\n"
        f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
    )
    subprocess.run([sys.executable, "-c", starter], check=True, timeout=60)
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while psutil.pid_exists(child) and psutil.Process(child).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the child outlived its starter"
        time.sleep(0.1)


def test_make_secrets_completes_an_env_file_privately(tmp_path):
    """``make secrets``: every secret docker-compose.yml requires gets a value, mode 0600; a
    value already there is kept (the database volumes were created with it), an empty one (a
    copied .env.example) is filled, other lines stay; running it again changes nothing."""
    from cryptography.fernet import Fernet

    path = tmp_path / ".env"
    path.write_text("# mine\nAIRFLOW_DB_PASSWORD=kept\nWAREHOUSE_PASSWORD=\nINTERESTFLOW_BIND=0.0.0.0\n")
    path.chmod(0o644)
    added = write_compose_secrets(path)
    assert set(added) == set(COMPOSE_SECRETS) - {"AIRFLOW_DB_PASSWORD"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = path.read_text().splitlines()
    assert lines[:2] == ["# mine", "AIRFLOW_DB_PASSWORD=kept"] and "INTERESTFLOW_BIND=0.0.0.0" in lines
    values = dict(line.split("=", 1) for line in lines if not line.startswith("#"))
    assert all(values[k] for k in COMPOSE_SECRETS)
    assert len(set(values[k] for k in COMPOSE_SECRETS)) == len(COMPOSE_SECRETS)
    Fernet(values["AIRFLOW__CORE__FERNET_KEY"].encode())  # a valid key
    before = path.read_text()
    assert write_compose_secrets(path) == [] and path.read_text() == before


def test_airflow_db_url_quotes_the_parts_and_needs_a_password():
    env = {
        "AIRFLOW_DB_PASSWORD": "p@ss:w/rd%",
        "AIRFLOW_DB_USER": "air flow",
        "AIRFLOW_DB_HOST": "db",
        "AIRFLOW_DB_NAME": "meta",
    }
    assert airflow_db_url("metadata", env) == "postgresql+psycopg2://air%20flow:p%40ss%3Aw%2Frd%25@db:5432/meta"
    assert (
        airflow_db_url("result-backend", {"AIRFLOW_DB_PASSWORD": "x"})
        == "db+postgresql://airflow:x@airflow-db:5432/airflow"
    )
    with pytest.raises(ValueError, match="AIRFLOW_DB_PASSWORD is not set"):
        airflow_db_url("metadata", {})


class _Parsing(AirflowClient):
    """The API's DAG list as the dag-processor fills it: one more answer per poll."""

    def __init__(self, answers: list[list[str]]):
        super().__init__("http://127.0.0.1:9", "admin", "unused")
        self.answers, self.polls = answers, 0

    def dag_ids(self) -> list[str]:
        self.polls += 1
        return self.answers[min(self.polls, len(self.answers)) - 1]


def test_waiting_for_dags_lasts_until_each_is_parsed_and_names_those_that_never_are(monkeypatch):
    monkeypatch.setattr(scaleout.time, "sleep", lambda s: None)
    client = _Parsing([["ingest_events"], ["ingest_events", "publish_recommendations"], ["publish_audiences", "x"]])
    client.wait_dags(["publish_recommendations"])
    assert client.polls == 2
    client.wait_dags(["publish_audiences"])
    assert client.polls == 3

    never = _Parsing([["ingest_events"]])
    with pytest.raises(TimeoutError, match=r"\['publish_audiences'\]"):
        never.wait_dags(["ingest_events", "publish_audiences"], timeout_s=0.0)
