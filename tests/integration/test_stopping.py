"""Stopping the local runtime leaves nothing behind: ``make airflow`` (``python -m ml airflow
standalone``) stopped by SIGTERM or killed by SIGKILL. Real Airflow processes in a temporary home.
(``make demo`` starts no process of its own: its set-up parses dbt and migrates the metadata DB
in-process.)"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from ml.orchestration.scaleout import free_port
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
LOG_SERVER_PORTS = {8793, 8794}


def _env(tmp_path: Path, port: int) -> dict[str, str]:
    """A private Airflow: its own home, metadata DB, warehouse and port (none of the session's
    AIRFLOW__* settings, which point at the test session's Airflow)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "INTERESTFLOW_HOME": str(tmp_path / "state"),
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            # nothing to schedule: the test is about processes, not runs
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        }
    )
    return env


def _family(pid: int) -> list[psutil.Process]:
    try:
        p = psutil.Process(pid)
        return [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _alive(procs: list[psutil.Process], timeout_s: float) -> list[str]:
    """Descriptions of the processes still running (not zombies) after up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = []
        for p in procs:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{p.pid} {' '.join(p.cmdline())[:100]}")
            except psutil.Error:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def _component(p: psutil.Process) -> str | None:
    try:
        cmd = " ".join(p.cmdline())
    except psutil.Error:
        return None
    # the api-server retitles itself "airflow api_server -- host:…"
    return next((c for c in COMPONENTS if f"airflow {c}" in cmd or f"airflow {c.replace('-', '_')}" in cmd), None)


@pytest.fixture()
def started(tmp_path):
    """``python -m ml airflow standalone`` in a private home, up: the API answers and the four
    components run. Yields (process, family, env); whatever is left is SIGKILLed afterwards."""
    port = free_port()
    env = _env(tmp_path, port)
    with open(tmp_path / "standalone.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ml", "airflow", "standalone", "--grace", "20"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    seen: dict[int, psutil.Process] = {}
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, (tmp_path / "standalone.log").read_text()[-4000:]
            fam = _family(proc.pid)
            seen.update({p.pid: p for p in fam})
            running = {_component(p) for p in fam} - {None}
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5) as r:
                    up = r.status == 200
            except OSError:
                up = False
            if up and running == set(COMPONENTS):
                break
            assert time.monotonic() < deadline, (
                f"not up; running {running}\n" + (tmp_path / "standalone.log").read_text()[-4000:]
            )
            time.sleep(1)
        yield proc, _family(proc.pid), env
    finally:
        for p in [*seen.values(), *_family(proc.pid)]:
            with contextlib.suppress(psutil.Error):
                p.kill()


def test_make_airflow_is_closed_to_the_network_and_sigterm_stops_all_of_it(started, tmp_path):
    """Nothing of ``make airflow`` accepts connections from the network: every listening socket
    of the process tree is on 127.0.0.1/::1, and neither log server (8793, 8794) runs. The
    password file SimpleAuthManager filled in is mode 0600 and holds the admin password. Then
    SIGTERM (what a service manager sends): the api-server, scheduler, dag-processor, triggerer
    and every process under them are gone within the grace period, and it exits 0 (a clean stop
    for the service manager). One start serves both checks: it is the slow part."""
    proc, family, env = started
    listening = []
    for p in family:
        with contextlib.suppress(psutil.Error):
            listening += [c.laddr for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert listening, "the api-server listens"
    assert {a.ip for a in listening} <= {"127.0.0.1", "::1"}, listening
    assert not {a.port for a in listening} & LOG_SERVER_PORTS, listening
    pw = Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    deadline = time.monotonic() + 30
    while not pw.read_text().strip():  # the api-server writes it at start-up
        assert time.monotonic() < deadline, "no password was generated"
        time.sleep(0.5)
    assert stat.S_IMODE(pw.stat().st_mode) == 0o600
    assert json.loads(pw.read_text())["admin"]

    family = _family(proc.pid)
    assert len(family) >= 5
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert _alive(family, timeout_s=5) == []
    assert time.monotonic() - t0 < 40
    assert (
        "SIGTERM received: stopping api-server, scheduler, dag-processor, triggerer"
        in (tmp_path / "standalone.log").read_text()
    )


def test_sigkill_of_make_airflow_still_stops_its_components(started):
    """SIGKILL to ``make airflow`` runs none of its code: each component gets SIGTERM from the
    kernel (PR_SET_PDEATHSIG) and shuts down with its own children."""
    proc, family, _ = started
    proc.kill()
    proc.wait(timeout=10)
    assert _alive(family, timeout_s=60) == []
