"""The scale-out topology without Docker, on the PostgreSQL and Redis a machine already runs.

``make scale-up`` (``python -m ml.orchestration.scaleout up``) starts the same Airflow 3
topology as ``docker-compose.yml``, as plain processes:

* metadata database: PostgreSQL (``INTERESTFLOW_AIRFLOW_DB``, created when missing);
* CeleryExecutor: Redis broker, PostgreSQL result backend, two Celery workers (``worker1``,
  ``worker2``; each reports its own name as the task-instance hostname);
* api-server (REST API v2, SimpleAuthManager login), scheduler, dag-processor, triggerer;
* warehouse and dbt target on PostgreSQL (``INTERESTFLOW_WAREHOUSE``; ``ml.features.dbt.dbt_env``
  derives the ``postgres`` dbt target from it), with a ``warehouse`` pool wider than DuckDB's 1.

Everything is configured by environment variables (:meth:`Topology.from_env` lists them); the
defaults are for one developer machine and marked *local-only*. Each process gets a pid file and
a log under ``<state>/pids`` and ``<state>/logs``; ``make scale-down`` stops exactly those
processes (a pid file records the process start time, so a recycled pid is never signalled).
Secrets (JWT secret, API secret key, Fernet key, the admin password) are generated on the
first start into ``<state>/secrets.json`` (mode 0600), never into the repository.

:class:`AirflowClient` is the external client of the REST API (JWT from ``/auth/token``) used
by the integration tests, the pipeline benchmark and ``python -m ml.orchestration.scaleout
pipeline``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse, urlunparse

from ml import config
from ml.orchestration import children

# (LOCAL_PG, LOCAL_REDIS: the local-only defaults, the services a developer machine runs on 127.0.0.1)
from ml.settings import LOCAL_PG, LOCAL_REDIS, settings

# the asset chain one ingest drives, each DAG with the DAGs whose asset events trigger it
UPSTREAM: dict[str, tuple[str, ...]] = {
    "build_features": ("ingest_events",),
    "evaluate_policies": ("build_features",),
    "retrain_models": ("build_features",),
    "publish_recommendations": ("evaluate_policies", "retrain_models"),
}
PIPELINE_DAGS = ("ingest_events", *UPSTREAM)
DOWNSTREAM_DAGS = tuple(UPSTREAM)
TERMINAL_RUN_STATES = {"success", "failed"}


def record_seconds(record: dict[str, Any]) -> float | None:
    """Seconds from ``start_date`` to ``end_date`` of a DAG run or task instance as the REST API
    returns it; None while either is missing."""
    from datetime import datetime

    start, end = record.get("start_date"), record.get("end_date")
    if not (start and end):
        return None
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 3)


def _fernet_key() -> str:
    """What ``cryptography.fernet.Fernet.generate_key()`` returns (32 random bytes, URL-safe
    base64), without the dependency: ``make secrets`` runs before any virtualenv exists."""
    import base64

    return base64.urlsafe_b64encode(os.urandom(32)).decode()


# the shared secrets of every topology, by environment variable, each with its generator
SECRETS: dict[str, Callable[[], str]] = {
    "AIRFLOW__API_AUTH__JWT_SECRET": lambda: secrets.token_urlsafe(48),
    "AIRFLOW__API__SECRET_KEY": lambda: secrets.token_urlsafe(32),
    "AIRFLOW__CORE__FERNET_KEY": _fernet_key,
    "INTERESTFLOW_AIRFLOW_ADMIN_PASSWORD": lambda: secrets.token_urlsafe(12),
}
# docker-compose.yml also owns its two PostgreSQL servers; it requires all of these
COMPOSE_SECRETS: dict[str, Callable[[], str]] = {
    **SECRETS,
    "AIRFLOW_DB_PASSWORD": lambda: secrets.token_urlsafe(24),
    "WAREHOUSE_PASSWORD": lambda: secrets.token_urlsafe(24),
}


# --------------------------------------------------------------------------- services


def pg_reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether a PostgreSQL server answers at ``url`` (any database)."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=max(1, int(timeout))) as con:
            con.execute("select 1")
        return True
    except psycopg.Error:
        return False


def redis_reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether Redis answers PING at ``url`` (credentials in the URL are used)."""
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout).ping())
    except (redis.RedisError, OSError):
        return False


def database_url(server_url: str, database: str) -> str:
    """``server_url`` with its path replaced by ``/database``."""
    u = urlparse(server_url)
    return urlunparse(u._replace(path=f"/{database}"))


def create_database(server_url: str, name: str) -> bool:
    """Create database ``name`` on the server when missing; True when it was created."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(database_url(server_url, "postgres"), autocommit=True) as con:
        if con.execute("select 1 from pg_database where datname = %s", [name]).fetchone():
            return False
        try:
            con.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase:
            return False
        return True


def drop_database(server_url: str, name: str) -> None:
    """Drop database ``name`` (closing its sessions) if it exists."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(database_url(server_url, "postgres"), autocommit=True) as con:
        con.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def airflow_argv(*args: str) -> list[str]:
    """``airflow <args>`` run by this interpreter (the environment's Airflow, whatever PATH holds)."""
    return [sys.executable, "-m", "airflow", *args]


def node_name() -> str:
    """Airflow's ``hostname_callable`` for this topology: a worker's own name (set per process
    in ``INTERESTFLOW_NODE_NAME``), else the machine's FQDN. Two workers on one machine thus
    appear as two hosts in task instances."""
    return settings().node_name or socket.getfqdn()


# --------------------------------------------------------------------------- topology


@dataclass(frozen=True)
class Worker:
    name: str
    concurrency: int = 2
    queues: str = "default"


@dataclass(frozen=True)
class Topology:
    """One scale-out deployment on local services. All fields come from the environment."""

    state: Path
    pg_server: str = LOCAL_PG
    airflow_db: str = "interestflow_airflow"
    warehouse_url: str = f"{LOCAL_PG}/interestflow_wh"
    broker_url: str = LOCAL_REDIS
    key_prefix: str = "interestflow"
    api_host: str = "127.0.0.1"
    api_port: int = 8280
    workers: tuple[Worker, ...] = (Worker("worker1"), Worker("worker2"))
    warehouse_pool_slots: int = 4
    heartbeat_timeout_s: int = 60
    admin_user: str = "admin"
    extra_env: dict[str, str] = field(default_factory=dict)
    # tests and benchmarks: the processes get SIGTERM when the process that started them dies,
    # so a killed test run leaves no topology behind (``make scale-up`` leaves it False)
    tied_to_caller: bool = False

    @classmethod
    def from_env(cls, **overrides: Any) -> Topology:
        """Read the deployment from the environment:

        ``INTERESTFLOW_SCALEOUT_HOME`` (state folder; default ``<INTERESTFLOW_HOME>/scaleout``),
        ``INTERESTFLOW_PG_SERVER`` (PostgreSQL server URL without database; local-only default
        ``postgresql://postgres@127.0.0.1:5432``), ``INTERESTFLOW_AIRFLOW_DB`` (metadata database,
        default ``interestflow_airflow``), ``INTERESTFLOW_WAREHOUSE`` (default
        ``<server>/interestflow_wh``), ``INTERESTFLOW_CELERY_BROKER`` (local-only default
        ``redis://127.0.0.1:6379/5``), ``INTERESTFLOW_CELERY_KEY_PREFIX``, ``INTERESTFLOW_API_HOST``
        / ``INTERESTFLOW_API_PORT`` (default 127.0.0.1:8280), ``INTERESTFLOW_WORKERS`` (number of
        Celery workers, default 2), ``INTERESTFLOW_WORKER_CONCURRENCY`` (default 2),
        ``INTERESTFLOW_WAREHOUSE_POOL_SLOTS`` (default 4), ``INTERESTFLOW_HEARTBEAT_TIMEOUT``
        (seconds before a task whose worker died is failed and retried, default 60).
        """
        s = settings()
        pg = s.pg_server.rstrip("/")
        wh = s.warehouse or ""
        if not wh.startswith(("postgres://", "postgresql://")):
            wh = f"{pg}/interestflow_wh"
        values: dict[str, Any] = {
            "state": s.scaleout_dir,
            "pg_server": pg,
            "airflow_db": s.airflow_db,
            "warehouse_url": wh,
            "broker_url": s.celery_broker,
            "key_prefix": s.celery_key_prefix,
            "api_host": s.api_host,
            "api_port": s.api_port,
            "workers": tuple(Worker(f"worker{i + 1}", s.worker_concurrency) for i in range(s.workers)),
            "warehouse_pool_slots": s.warehouse_pool_slots,
            "heartbeat_timeout_s": s.heartbeat_timeout,
        }
        values.update(overrides)
        return cls(**values)

    def __post_init__(self) -> None:
        if not self.workers:
            raise ValueError("a topology needs at least one Celery worker")
        if len({w.name for w in self.workers}) != len(self.workers):
            raise ValueError(f"worker names must be distinct: {[w.name for w in self.workers]}")
        if urlparse(self.warehouse_url).scheme not in ("postgres", "postgresql"):
            raise ValueError(f"the scale-out warehouse must be PostgreSQL, got {self.warehouse_url!r}")

    # ---- paths
    @property
    def airflow_home(self) -> Path:
        return self.state / "airflow"

    @property
    def logs_dir(self) -> Path:
        return self.state / "logs"

    @property
    def pids_dir(self) -> Path:
        return self.state / "pids"

    @property
    def landing_dir(self) -> Path:
        return self.state / "landing"

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"

    @property
    def warehouse_db(self) -> str:
        return urlparse(self.warehouse_url).path.lstrip("/")

    @property
    def metadata_url(self) -> str:
        return database_url(self.pg_server, self.airflow_db)

    # ---- secrets
    def secrets(self) -> dict[str, str]:
        """JWT secret, API secret key, Fernet key and admin password: read from the environment
        when set there, else generated once into ``<state>/secrets.json`` (mode 0600)."""
        path = self.state / "secrets.json"
        stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        wanted = {
            "jwt_secret": "AIRFLOW__API_AUTH__JWT_SECRET",
            "api_secret_key": "AIRFLOW__API__SECRET_KEY",
            "fernet_key": "AIRFLOW__CORE__FERNET_KEY",
            "admin_password": "INTERESTFLOW_AIRFLOW_ADMIN_PASSWORD",
        }
        changed = False
        out = {}
        for key, env_name in wanted.items():
            make = SECRETS[env_name]
            if os.environ.get(env_name):
                out[key] = os.environ[env_name]
                continue
            if key not in stored:
                stored[key] = make()
                changed = True
            out[key] = stored[key]
        if changed:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600, exist_ok=True)
            path.write_text(json.dumps(stored, indent=1))
            path.chmod(0o600)
        return out

    def passwords_file(self) -> Path:
        return self.state / "simple_auth_manager_passwords.json"

    # ---- environment
    def env(self) -> dict[str, str]:
        """The complete environment of every process of the topology."""
        s = self.secrets()
        # other AIRFLOW__* settings from the caller's environment pass through; the ones below win
        base = dict(os.environ)
        base.update(config.airflow_env(self.airflow_home))
        broker = urlparse(self.broker_url)
        if broker.scheme not in ("redis", "rediss"):
            raise ValueError(f"the Celery broker must be Redis, got {self.broker_url!r}")
        base.update(
            {
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CORE__PARALLELISM": "16",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "ml.orchestration.scaleout.node_name",
                "AIRFLOW__CORE__FERNET_KEY": s["fernet_key"],
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.admin_user}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file()),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": _sqlalchemy_url(self.metadata_url),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "3",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_MAX_OVERFLOW": "6",
                "AIRFLOW__CELERY__BROKER_URL": self.broker_url,
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + _sqlalchemy_url(self.metadata_url),
                "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
                "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": f"{self.key_prefix}:",
                "AIRFLOW__API__HOST": self.api_host,
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__BASE_URL": self.api_url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__SECRET_KEY": s["api_secret_key"],
                "AIRFLOW__API_AUTH__JWT_SECRET": s["jwt_secret"],
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(self.heartbeat_timeout_s),
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
                "INTERESTFLOW_HOME": str(self.state / "interestflow"),
                "INTERESTFLOW_WAREHOUSE": self.warehouse_url,
                "INTERESTFLOW_LANDING": str(self.landing_dir),
                "INTERESTFLOW_ARTIFACTS": str(self.state / "interestflow" / "artifacts"),
            }
        )
        base.update(self.extra_env)
        return base

    def commands(self) -> list[tuple[str, list[str], dict[str, str]]]:
        """(name, argv, extra env) of every long-running process, in start order."""
        af = airflow_argv
        procs: list[tuple[str, list[str], dict[str, str]]] = [
            ("api-server", af("api-server", "--host", self.api_host, "--port", str(self.api_port)), {}),
            ("scheduler", af("scheduler"), {}),
            ("dag-processor", af("dag-processor"), {}),
            # no log server: Airflow's binds every interface (no bind setting in 3.3), and every
            # process here shares the machine's log folder, which the api-server reads
            ("triggerer", af("triggerer", "--skip-serve-logs"), {}),
        ]
        for w in self.workers:
            argv = af("celery", "worker", "--celery-hostname", f"{w.name}@%h", "--concurrency", str(w.concurrency))
            argv += ["--queues", w.queues, "--skip-serve-logs", "--without-mingle", "--without-gossip"]
            procs.append((w.name, argv, {"INTERESTFLOW_NODE_NAME": w.name}))
        return procs

    # ---- lifecycle
    def up(self, wait_s: float = 600.0, log: Any = print) -> dict[str, Any]:
        """Create the databases, migrate, set the pool and users, start every process and wait
        until the API answers, the scheduler, dag-processor and triggerer are healthy, every
        worker is ready and the pipeline DAGs are parsed. Idempotent: running processes stay."""
        if not pg_reachable(database_url(self.pg_server, "postgres")):
            raise RuntimeError(f"PostgreSQL is unreachable at {self.pg_server} (set INTERESTFLOW_PG_SERVER)")
        if not redis_reachable(self.broker_url):
            raise RuntimeError(f"Redis is unreachable at {self.broker_url} (set INTERESTFLOW_CELERY_BROKER)")
        for d in (self.airflow_home, self.logs_dir, self.pids_dir, self.landing_dir):
            d.mkdir(parents=True, exist_ok=True)
        for db in (self.airflow_db, self.warehouse_db):
            if create_database(self.pg_server, db):
                log(f"created database {db}")
        env = self.env()
        self._write_passwords()
        self._write_env_file(env)
        _ensure_dbt_manifest(self.warehouse_url)
        t0 = time.monotonic()
        self._run(env, ["db", "migrate"], "db-migrate", timeout=wait_s)
        self._run(
            env,
            ["pools", "set", "warehouse", str(self.warehouse_pool_slots), "Warehouse writers (PostgreSQL: several)"],
            "pools",
            timeout=wait_s,
        )
        log(f"metadata database {self.airflow_db} migrated in {time.monotonic() - t0:.0f}s")
        for name, argv, extra in self.commands():
            if self._alive(name):
                log(f"{name}: already running")
                continue
            pid = self._start(name, argv, {**env, **extra})
            log(f"{name}: started (pid {pid}), log {self.logs_dir / (name + '.log')}")
        self.wait_ready(timeout_s=max(30.0, wait_s - (time.monotonic() - t0)))
        log(f"ready: {self.api_url} (user {self.admin_user!r}, password in {self.passwords_file()})")
        return self.status()

    def down(self, grace_s: float = 20.0, drop_databases: bool = False, log: Any = print) -> list[str]:
        """Stop exactly the processes ``up`` started (reverse order), then optionally drop the
        topology's databases and Redis keys. Returns the names of the processes stopped."""
        import psutil

        stopped = []
        names = [n for n, _, _ in self.commands()]
        extra = (
            sorted(p.stem for p in self.pids_dir.glob("*.pid") if p.stem not in names) if self.pids_dir.exists() else []
        )
        for name in [*extra, *reversed(names)]:
            rec = self._pid_record(name)
            if rec is None:
                continue
            proc = _own_process(rec)
            if proc is not None:
                family = [proc, *proc.children(recursive=True)]
                children.signal_group(proc.pid, signal.SIGTERM)
                _, alive = psutil.wait_procs(family, timeout=grace_s)
                for p in alive:
                    with _quiet():
                        p.kill()
                psutil.wait_procs(alive, timeout=5)
                stopped.append(name)
                log(f"{name}: stopped (pid {rec['pid']})")
            (self.pids_dir / f"{name}.pid").unlink(missing_ok=True)
        if drop_databases:
            for db in (self.airflow_db, self.warehouse_db):
                drop_database(self.pg_server, db)
                log(f"dropped database {db}")
            self._flush_redis_keys()
        return stopped

    def kill_worker(self, name: str) -> int:
        """SIGKILL one worker and every process under it (simulates losing a machine).
        Returns the number of processes killed."""
        import psutil

        rec = self._pid_record(name)
        proc = _own_process(rec) if rec else None
        if proc is None:
            raise RuntimeError(f"{name} is not running")
        family = [proc, *proc.children(recursive=True)]
        for p in family:
            with _quiet():
                p.kill()
        psutil.wait_procs(family, timeout=10)
        (self.pids_dir / f"{name}.pid").unlink(missing_ok=True)
        return len(family)

    def status(self) -> dict[str, Any]:
        procs = {}
        for name, _, _ in self.commands():
            rec = self._pid_record(name)
            procs[name] = {"pid": rec["pid"] if rec else None, "alive": self._alive(name)}
        return {
            "api_url": self.api_url,
            "state": str(self.state),
            "metadata_db": self.airflow_db,
            "warehouse": _redact(self.warehouse_url),
            "broker": _redact(self.broker_url),
            "processes": procs,
        }

    def client(self) -> AirflowClient:
        return AirflowClient(self.api_url, self.admin_user, self.secrets()["admin_password"])

    def wait_ready(self, timeout_s: float = 300.0) -> None:
        """Block until the API, scheduler, dag-processor, triggerer and all workers are up and
        the pipeline DAGs are parsed without import errors; raise with log tails otherwise."""
        deadline = time.monotonic() + timeout_s
        client = self.client()
        pending: list[str] = ["api", "components", "workers", "dags"]
        while pending:
            dead = [n for n, _, _ in self.commands() if not self._alive(n)]
            if dead:
                raise RuntimeError(f"processes exited during start-up: {dead}\n{self.log_tails(dead)}")
            try:
                if "api" in pending and client.healthy() is not None:
                    pending.remove("api")
                if "components" in pending and "api" not in pending:
                    health = client.healthy() or {}
                    if all(
                        (health.get(c) or {}).get("status") == "healthy"
                        for c in ("metadatabase", "scheduler", "dag_processor", "triggerer")
                    ):
                        pending.remove("components")
                if "workers" in pending and all(self._worker_ready(w.name) for w in self.workers):
                    pending.remove("workers")
                if "dags" in pending and "api" not in pending:
                    errors = client.import_errors()
                    if errors:
                        raise RuntimeError(f"DAG import errors: {json.dumps(errors, indent=1)[:4000]}")
                    if set(PIPELINE_DAGS) <= set(client.dag_ids()):
                        pending.remove("dags")
            except OSError:
                pass
            if pending and time.monotonic() > deadline:
                raise TimeoutError(
                    f"topology not ready after {timeout_s:.0f}s, waiting for {pending}\n{self.log_tails()}"
                )
            if pending:
                time.sleep(2)

    def log_tails(self, names: Iterable[str] | None = None, lines: int = 30) -> str:
        out = []
        for name in names or [n for n, _, _ in self.commands()]:
            path = self.logs_dir / f"{name}.log"
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {path} (last {len(tail)} lines)\n" + "\n".join(tail))
        return "\n".join(out)

    # ---- internals
    def _run(self, env: dict[str, str], args: list[str], name: str, timeout: float) -> None:
        log_path = self.logs_dir / f"{name}.log"
        with open(log_path, "w") as out:
            proc = children.run(
                airflow_argv(*args), env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, check=False
            )
        if proc.returncode != 0:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-40:])
            raise RuntimeError(f"airflow {' '.join(args)} failed (exit {proc.returncode}):\n{tail}")

    def _start(self, name: str, argv: list[str], env: dict[str, str]) -> int:
        import psutil

        log_path = self.logs_dir / f"{name}.log"
        with open(log_path, "a") as out:
            proc = subprocess.Popen(
                argv,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=str(config.PROJECT_ROOT),
                start_new_session=True,  # own process group: scale-down signals the whole tree
                preexec_fn=children.die_with_parent() if self.tied_to_caller else None,
            )
        rec = {"pid": proc.pid, "create_time": psutil.Process(proc.pid).create_time(), "argv": argv}
        (self.pids_dir / f"{name}.pid").write_text(json.dumps(rec))
        return proc.pid

    def _pid_record(self, name: str) -> dict[str, Any] | None:
        path = self.pids_dir / f"{name}.pid"
        if not path.exists():
            return None
        try:
            rec: dict[str, Any] = json.loads(path.read_text())
            return rec
        except json.JSONDecodeError:
            return None

    def _alive(self, name: str) -> bool:
        rec = self._pid_record(name)
        proc = _own_process(rec) if rec else None
        if proc is None:
            return False
        try:
            return proc.status() != "zombie"
        except Exception:
            return False

    def _worker_ready(self, name: str) -> bool:
        """Celery logs ``celery@<name>@<host> ready.`` once it consumes from the broker."""
        path = self.logs_dir / f"{name}.log"
        if not path.exists():
            return False
        return any(f"{name}@" in line and " ready." in line for line in path.read_text(errors="replace").splitlines())

    def _write_passwords(self) -> None:
        path = self.passwords_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)
        path.write_text(json.dumps({self.admin_user: self.secrets()["admin_password"]}))
        path.chmod(0o600)

    def _write_env_file(self, env: dict[str, str]) -> None:
        """``<state>/env.sh``: source it to use the ``airflow`` CLI or ``python -m ml`` against
        this topology (mode 0600: it holds the generated secrets)."""
        keys = sorted(k for k in env if k.startswith(("AIRFLOW", "INTERESTFLOW_", "PYTHONPATH")))
        path = self.state / "env.sh"
        path.touch(mode=0o600, exist_ok=True)
        path.write_text("".join(f"export {k}={_shell_quote(env[k])}\n" for k in keys))
        path.chmod(0o600)

    def _flush_redis_keys(self) -> None:
        """Delete the broker keys under this topology's prefix (Celery queues, unacked tasks)."""
        import redis

        r = redis.Redis.from_url(self.broker_url)
        keys = list(r.scan_iter(match=f"{self.key_prefix}:*", count=1000))
        if keys:
            r.delete(*keys)


def _sqlalchemy_url(pg_url: str) -> str:
    """``postgresql://…`` → ``postgresql+psycopg2://…`` (the driver Airflow's metadata DB uses)."""
    u = urlparse(pg_url)
    return urlunparse(u._replace(scheme="postgresql+psycopg2"))


def _redact(url: str) -> str:
    u = urlparse(url)
    if u.password:
        netloc = f"{u.username}:***@{u.hostname}" + (f":{u.port}" if u.port else "")
        return urlunparse(u._replace(netloc=netloc))
    return url


def _shell_quote(v: str) -> str:
    return "'" + v.replace("'", "'\"'\"'") + "'"


class _quiet:
    """Ignore the process having exited already."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, et: type[BaseException] | None, *_: object) -> bool:
        import psutil

        return et is not None and issubclass(et, psutil.Error | ProcessLookupError)


def _own_process(rec: dict[str, Any]) -> Any:
    """The live process of a pid record, or None (exited, or the pid now belongs to another)."""
    import psutil

    try:
        proc = psutil.Process(int(rec["pid"]))
        if abs(proc.create_time() - float(rec["create_time"])) > 1.0:
            return None
        return proc
    except (psutil.Error, KeyError, ValueError):
        return None


def _ensure_dbt_manifest(warehouse_url: str) -> None:
    """Cosmos renders the dbt task group from ``dbt/target/manifest.json``: parse when stale."""
    from ml.orchestration.local import dbt_manifest_fresh

    if not dbt_manifest_fresh():
        from ml.features.dbt import run_dbt
        from ml.warehouse import Warehouse

        run_dbt(["parse"], Warehouse(warehouse_url))


# --------------------------------------------------------------------------- REST client


class ApiError(RuntimeError):
    pass


@dataclass
class AirflowClient:
    """A minimal external client of the Airflow 3 REST API v2 (JWT bearer token)."""

    base_url: str
    username: str
    password: str
    timeout_s: float = 30.0
    _token: str | None = None

    def token(self) -> str:
        import requests

        if self._token is None:
            r = requests.post(
                f"{self.base_url}/auth/token",
                json={"username": self.username, "password": self.password},
                timeout=self.timeout_s,
            )
            if r.status_code not in (200, 201):
                raise ApiError(f"login as {self.username!r} failed: HTTP {r.status_code} {r.text[:300]}")
            self._token = str(r.json()["access_token"])
        return self._token

    def request(self, method: str, path: str, **kw: Any) -> Any:
        import requests

        for attempt in range(2):
            headers = {"Authorization": f"Bearer {self.token()}"}
            try:
                r = requests.request(method, f"{self.base_url}{path}", headers=headers, timeout=self.timeout_s, **kw)
            except requests.ConnectionError as exc:
                raise OSError(f"{method} {path}: {exc}") from exc
            if r.status_code == 401 and attempt == 0:
                self._token = None  # expired: log in again
                continue
            if r.status_code >= 400:
                raise ApiError(f"{method} {path}: HTTP {r.status_code} {r.text[:500]}")
            return r.json() if r.content else None
        raise ApiError(f"{method} {path}: unauthorised")

    def healthy(self) -> dict[str, Any] | None:
        import requests

        try:
            r = requests.get(f"{self.base_url}/api/v2/monitor/health", timeout=self.timeout_s)
        except requests.ConnectionError as exc:
            raise OSError(str(exc)) from exc
        return r.json() if r.status_code == 200 else None

    def dag_ids(self) -> list[str]:
        return [d["dag_id"] for d in self.request("GET", "/api/v2/dags", params={"limit": 100})["dags"]]

    def import_errors(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/api/v2/importErrors")["import_errors"])

    def wait_dags(self, dag_ids: Iterable[str], timeout_s: float = 300.0) -> None:
        """Block until the dag-processor has parsed every DAG of ``dag_ids`` (a DAG the API
        does not know yet cannot be unpaused or triggered)."""
        wanted = set(dag_ids)
        deadline = time.monotonic() + timeout_s
        while missing := sorted(wanted - set(self.dag_ids())):
            if time.monotonic() > deadline:
                raise TimeoutError(f"DAGs not parsed after {timeout_s:.0f}s: {missing}")
            time.sleep(2)

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": paused})

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST a manual DAG run (Airflow 3: ``logical_date`` may be null)."""
        body = {"logical_date": None, "conf": conf or {}}
        return dict(self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body))

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        res = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100, "order_by": "-run_after"})
        return list(res["dag_runs"])

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"))

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            res = self.request(
                "GET",
                f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                params={"limit": 100, "offset": len(out)},
            )
            out += res["task_instances"]
            if len(out) >= res["total_entries"] or not res["task_instances"]:
                return out

    def wait_run(self, dag_id: str, run_id: str, timeout_s: float = 900.0, poll_s: float = 3.0) -> dict[str, Any]:
        """Poll until the run ends; returns it (state ``success`` or ``failed``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            run = self.run(dag_id, run_id)
            if run["state"] in TERMINAL_RUN_STATES:
                return run
            if time.monotonic() > deadline:
                tis = {t["task_id"]: t["state"] for t in self.task_instances(dag_id, run_id)}
                raise TimeoutError(f"{dag_id} run {run_id} still {run['state']} after {timeout_s:.0f}s: {tis}")
            time.sleep(poll_s)

    def wait_new_run(self, dag_id: str, after: str, timeout_s: float = 600.0, poll_s: float = 3.0) -> dict[str, Any]:
        """The first run of ``dag_id`` queued at or after ``after`` (ISO time, server clock)."""
        deadline = time.monotonic() + timeout_s
        while True:
            mine = [r for r in self.runs(dag_id) if (r.get("queued_at") or r.get("run_after") or "") >= after]
            if mine:
                return min(mine, key=lambda r: r.get("queued_at") or r["run_after"])
            if time.monotonic() > deadline:
                raise TimeoutError(f"no run of {dag_id} was created after {after} within {timeout_s:.0f}s")
            time.sleep(poll_s)


@dataclass
class PipelineResult:
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    task_instances: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.runs) and all(r["state"] == "success" for r in self.runs.values())

    def hostnames(self) -> set[str]:
        return {t["hostname"] for tis in self.task_instances.values() for t in tis if t.get("hostname")}


def prepare_pipeline(client: AirflowClient, timeout_s: float = 300.0) -> None:
    """Unpause the pipeline so that one triggered ingest run drives the whole asset chain.

    DAGs start paused in this topology. ``ingest_events`` is unpaused first, while its
    consumers are still paused, so the scheduled hourly run Airflow creates on unpausing
    (an ingest of the landing folder) cannot start a second chain; once it has finished the
    asset-scheduled consumers are unpaused."""
    client.set_paused("ingest_events", False)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        active = [r for r in client.runs("ingest_events") if r["state"] not in TERMINAL_RUN_STATES]
        if not active and client.runs("ingest_events"):
            break
        time.sleep(2)
    for dag_id in DOWNSTREAM_DAGS:
        client.set_paused(dag_id, False)


def run_pipeline(
    client: AirflowClient, conf: dict[str, Any] | None = None, timeout_s: float = 1800.0
) -> PipelineResult:
    """Trigger ``ingest_events`` through the REST API and follow the asset chain
    (build_features → evaluate_policies and retrain_models → publish_recommendations) until
    every run ends."""
    t0 = time.monotonic()
    res = PipelineResult()
    run = client.trigger("ingest_events", conf)
    queued = {"ingest_events": run.get("queued_at") or run["run_after"]}
    res.runs["ingest_events"] = client.wait_run("ingest_events", run["dag_run_id"], timeout_s=timeout_s)
    res.task_instances["ingest_events"] = client.task_instances("ingest_events", run["dag_run_id"])
    for dag_id, upstream in UPSTREAM.items():
        if any(res.runs.get(u, {}).get("state") != "success" for u in upstream):
            break
        # ISO 8601 times in UTC compare as text; the newest upstream run triggered this one
        after = max(queued[u] for u in upstream)
        left = max(60.0, timeout_s - (time.monotonic() - t0))
        new = client.wait_new_run(dag_id, after, timeout_s=min(left, 600.0))
        res.runs[dag_id] = client.wait_run(dag_id, new["dag_run_id"], timeout_s=left)
        res.task_instances[dag_id] = client.task_instances(dag_id, new["dag_run_id"])
        queued[dag_id] = new.get("queued_at") or new["run_after"]
    res.seconds = time.monotonic() - t0
    return res


# --------------------------------------------------------------------------- CLI


def write_auth_file(path: Path) -> int:
    """The SimpleAuthManager password file (mode 0600) for the admin user of a container stack."""
    s = settings()
    user = s.airflow_admin_user
    password = s.airflow_admin_password.get_secret_value() if s.airflow_admin_password else None
    if not password:
        print("error: set INTERESTFLOW_AIRFLOW_ADMIN_PASSWORD", file=sys.stderr)
        return 2
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(json.dumps({user: password}))
    path.chmod(0o600)
    return 0


AIRFLOW_DB_URL_SCHEMES = {"metadata": "postgresql+psycopg2", "result-backend": "db+postgresql"}


def airflow_db_url(kind: str, env: dict[str, str] | None = None) -> str:
    """Airflow's metadata database as the URL ``kind`` names (``metadata``: SQLAlchemy's,
    ``result-backend``: Celery's ``db+`` form), from ``AIRFLOW_DB_USER``, ``AIRFLOW_DB_PASSWORD``,
    ``AIRFLOW_DB_HOST``, ``AIRFLOW_DB_PORT`` and ``AIRFLOW_DB_NAME``. docker-compose.yml hands it
    to Airflow through its ``..._CMD`` settings, so no file holds the password inside a URL."""
    env = dict(os.environ) if env is None else env
    password = env.get("AIRFLOW_DB_PASSWORD", "")
    if not password:
        raise ValueError("AIRFLOW_DB_PASSWORD is not set (docker-compose passes it from .env: run make secrets)")
    user = quote(env.get("AIRFLOW_DB_USER") or "airflow", safe="")
    where = f"{env.get('AIRFLOW_DB_HOST') or 'airflow-db'}:{env.get('AIRFLOW_DB_PORT') or '5432'}"
    name = quote(env.get("AIRFLOW_DB_NAME") or "airflow", safe="")
    return f"{AIRFLOW_DB_URL_SCHEMES[kind]}://{user}:{quote(password, safe='')}@{where}/{name}"


def write_compose_secrets(path: Path) -> list[str]:
    """Give every secret ``docker-compose.yml`` requires a generated value in the env file
    ``path`` (``make secrets`` writes ``.env``); returns the variables it set.

    A variable already set there keeps its value (the database volumes were initialised with
    it); one present but empty (a copied ``.env.example``) is filled in place; other lines stay
    as they are. The file is written with mode 0600."""
    lines = path.read_text().splitlines() if path.exists() else []
    values = {}
    for i, line in enumerate(lines):
        key, sep, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        if sep and not key.startswith("#"):
            values[key] = (i, value.strip())
    added = []
    for key, make in COMPOSE_SECRETS.items():
        if values.get(key, (0, ""))[1]:
            continue
        if key in values:
            lines[values[key][0]] = f"{key}={make()}"
        else:
            lines.append(f"{key}={make()}")
        added.append(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    path.chmod(0o600)
    path.write_text("".join(f"{line}\n" for line in lines))
    return added


def ping_worker(node: str, timeout_s: float = 10.0) -> int:
    """0 when Celery node ``node`` answers a ping through the broker, else 1."""
    from airflow.providers.celery.executors.celery_executor import app

    replies = app.control.inspect(destination=[node], timeout=timeout_s).ping() or {}
    return 0 if node in replies else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m ml.orchestration.scaleout", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start the topology (make scale-up)")
    up.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for readiness")
    down = sub.add_parser("down", help="stop what up started (make scale-down)")
    down.add_argument("--drop-databases", action="store_true", help="also drop the metadata and warehouse DBs")
    sub.add_parser("status", help="processes and URLs (JSON)")
    pl = sub.add_parser("pipeline", help="trigger the pipeline through the REST API and wait for every run")
    pl.add_argument("paths", nargs="*", help="landing files/folders to ingest (default: the landing folder)")
    pl.add_argument("--timeout", type=float, default=3600.0)
    af = sub.add_parser("auth-file", help="write the SimpleAuthManager password file from the environment")
    af.add_argument("path", help="INTERESTFLOW_AIRFLOW_ADMIN_USER (default admin) / _PASSWORD are written here")
    cs = sub.add_parser("compose-secrets", help="generate the secrets docker-compose.yml requires (make secrets)")
    cs.add_argument("path", help="env file to create or complete (mode 0600), e.g. .env")
    du = sub.add_parser("airflow-db-url", help="print Airflow's metadata DB URL (for the _CMD settings)")
    du.add_argument("kind", choices=sorted(AIRFLOW_DB_URL_SCHEMES), help="metadata or result-backend")
    pw = sub.add_parser("ping-worker", help="exit 0 when a Celery worker answers a ping (container health check)")
    pw.add_argument("node", help="Celery node name, e.g. celery@$HOSTNAME")
    args = p.parse_args(argv)
    if args.cmd == "auth-file":
        return write_auth_file(Path(args.path))
    if args.cmd == "ping-worker":
        return ping_worker(args.node)
    if args.cmd == "airflow-db-url":
        try:
            sys.stdout.write(airflow_db_url(args.kind))  # no newline: Airflow uses the output as it is
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.cmd == "compose-secrets":
        added = write_compose_secrets(Path(args.path))
        print(f"{args.path}: generated {', '.join(added)}" if added else f"{args.path}: every secret is set already")
        return 0
    topo = Topology.from_env()
    if args.cmd == "up":
        print(json.dumps(topo.up(wait_s=args.timeout), indent=1))
    elif args.cmd == "down":
        stopped = topo.down(drop_databases=args.drop_databases)
        print(f"stopped {len(stopped)} processes" if stopped else "nothing was running")
    elif args.cmd == "status":
        print(json.dumps(topo.status(), indent=1))
    else:
        client = topo.client()
        prepare_pipeline(client)
        conf = {"paths": [str(Path(x).resolve()) for x in args.paths]} if args.paths else {}
        res = run_pipeline(client, conf, timeout_s=args.timeout)
        for dag_id, run in res.runs.items():
            hosts = sorted({t["hostname"] for t in res.task_instances.get(dag_id, []) if t.get("hostname")})
            print(f"{dag_id:<26} {run['state']:<8} {run['dag_run_id']}  hosts={','.join(hosts)}")
        print(f"pipeline {'succeeded' if res.ok else 'FAILED'} in {res.seconds:.0f}s")
        return 0 if res.ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
