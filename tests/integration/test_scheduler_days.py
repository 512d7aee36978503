"""Two simulated days of the tiny shop through Airflow's real scheduler, not ``dag.test`` (issue #22),
with publish_recommendations' deadline alert mailing a local SMTP server (issue #26).

A fresh Airflow home (LocalExecutor on SQLite) on a copy of the state folder of the ``living_shop``
fixture: the tiny shop after its set-up (every DAG once on the shop's history) and two simulated
days on the embedded runtime. A subprocess of the test's environment migrates the metadata
database and serialises the DAGs; then ``airflow api-server`` (the REST API, and the execution
API the task processes talk to), ``airflow scheduler`` and ``airflow dag-processor`` start as
subprocesses on a free port. The shop lives two more days: each day its users answer the
published slates (a landing batch), ``ingest_events`` is triggered through the REST API with that
folder, and the assets drive the rest: ``build_features`` -> ``evaluate_policies`` and
``retrain_models`` -> ``publish_recommendations`` -> ``publish_audiences``.

The time-based DAGs stay out of the way: ``backfill_tags``, ``finetune_tagger`` and ``watch_serving`` are paused,
and the Airflow processes' landing folder is an empty one (the days are written elsewhere and
passed as paths), so an hourly ``ingest_events`` run finds nothing, skips and emits nothing.

Asserted: each day every DAG of the chain ran once and succeeded; each downstream run was
triggered by exactly the asset events of that day's upstream runs and started after they were
emitted; the second day started after the first ended; in the end nothing is queued or running, the paused DAGs never
ran, and the warehouse holds each day's batch once.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ml import config
from ml.orchestration.local import airflow_bin
from ml.orchestration.scaleout import AirflowClient, free_port

pytestmark = [pytest.mark.dags, pytest.mark.slow, pytest.mark.timeout(1800)]

CHAIN = (
    "ingest_events",
    "build_features",
    "evaluate_policies",
    "retrain_models",
    "publish_recommendations",
    "publish_audiences",
)
UPSTREAM = {
    "build_features": ("ingest_events",),
    "evaluate_policies": ("build_features",),
    "retrain_models": ("build_features",),
    "publish_recommendations": ("evaluate_policies", "retrain_models"),
    "publish_audiences": ("publish_recommendations",),
}
PAUSED = ("backfill_tags", "finetune_tagger", "watch_serving")
N_DAYS = 2
DEADLINE_S = 1.0  # publish_recommendations' deadline in this test: every run outlives it
DAY_TIMEOUT_S = 900
ENDED = ("success", "failed")
# The LocalExecutor forks every task process from the scheduler: importing dbt and Great
# Expectations there once spares each dbt and gate task those imports (seconds each).
SCHEDULER = (
    "import dbt.cli.main, dbt.adapters.duckdb, great_expectations, pandas, sys\n"
    "from airflow.__main__ import main\n"
    "sys.argv = ['airflow', 'scheduler']\n"
    "main()\n"
)
# the metadata database, the warehouse pool and the serialised DAGs of the fresh Airflow home
SETUP = """
from ml.orchestration import local
from airflow.__main__ import main
import sys

local.prepare()
sys.argv = ["airflow", "dags", "reserialize"]
main()
"""


@dataclass
class AirflowProcesses:
    """Airflow commands of one test in their own sessions, each logging to ``<logs>/<name>.log``."""

    env: dict[str, str]
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def run(self, name: str, argv: list[str], timeout_s: float) -> None:
        """Run a command to its end; raise with its log's tail when it fails."""
        with open(self.logs / f"{name}.log", "wb") as out:
            proc = subprocess.run(argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout_s)
        if proc.returncode != 0:
            raise RuntimeError(f"{name} failed (exit {proc.returncode})\n{self.tail(name, 60)}")

    def start(self, name: str, argv: list[str]) -> None:
        with open(self.logs / f"{name}.log", "ab") as out:
            self.procs[name] = subprocess.Popen(
                argv,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=config.PROJECT_ROOT,
                start_new_session=True,  # its own process group: stop() reaches the task processes too
            )

    def check_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        if dead:
            raise RuntimeError(f"Airflow processes exited: {dead}\n{self.tails()}")

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM every process group, then SIGKILL the groups still alive after ``grace_s``."""
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the group: workers and task processes left behind
            proc.wait(timeout=15)

    def tail(self, name: str, lines: int = 25) -> str:
        path = self.logs / f"{name}.log"
        text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else ["(no log)"]
        return f"--- {path}\n" + "\n".join(text)

    def tails(self) -> str:
        return "\n".join(self.tail(p.stem) for p in sorted(self.logs.glob("*.log")))


def _airflow_env(root: Path, port: int) -> dict[str, str]:
    """The fresh environment every Airflow process of the test gets (nothing of the session's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "INTERESTFLOW_"))}
    env.update(config.airflow_env(root / "airflow"))
    base = f"http://127.0.0.1:{port}"
    passwords = root / "passwords.json"
    passwords.write_text(json.dumps({"admin": secrets.token_urlsafe(12)}))
    (root / "landing-empty").mkdir()
    env.update(
        {
            "INTERESTFLOW_HOME": str(root / "state"),
            "INTERESTFLOW_LANDING": str(root / "landing-empty"),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": base,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
            # the scheduler signs the task processes' tokens, the api-server checks them
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            # the DAGs are in the metadata DB after the set-up: parse once, never re-parse
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3600",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "3600",
            "AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "0",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
        }
    )
    return env


@pytest.fixture()
def scheduler_world(
    tmp_path: Path, living_shop: dict, smtp_server: Any
) -> Iterator[tuple[AirflowProcesses, AirflowClient]]:
    """A copy of the living tiny shop's state in a fresh Airflow environment, then api-server,
    scheduler and dag-processor running on it; stopped (terminate, then kill) afterwards. Alerts
    go to the local SMTP server, and publish_recommendations' deadline is a second: each of its
    runs outlives it, so each sends one deadline alert."""
    shutil.copytree(living_shop["shop"].wh.path.parent, tmp_path / "state")
    port = free_port()
    env = _airflow_env(tmp_path, port)
    env["INTERESTFLOW_PUBLISH_DEADLINE_MINUTES"] = str(DEADLINE_S / 60)
    env["AIRFLOW_CONN_INTERESTFLOW_ALERTS"] = smtp_server.connection
    logs = tmp_path / "logs"
    logs.mkdir()
    af = AirflowProcesses(env, logs)
    password = json.loads(Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).read_text())["admin"]
    client = AirflowClient(env["AIRFLOW__API__BASE_URL"], "admin", password)
    try:
        t0 = time.monotonic()
        af.run("setup", [sys.executable, "-c", SETUP], timeout_s=600)
        print(f"metadata database and serialised DAGs in {time.monotonic() - t0:.0f} s")
        af.start(
            "api-server", [airflow_bin(), "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        )
        _wait_for_api(af, client, timeout_s=240)
        yield af, client
    finally:
        af.stop()
        print(af.tails())  # pytest shows it when the test fails
        alive = [n for n, p in af.procs.items() if p.poll() is None]
        assert not alive, f"Airflow processes still running: {alive}"


def _wait_for_api(af: AirflowProcesses, client: AirflowClient, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        af.check_alive()
        with contextlib.suppress(OSError):
            if client.healthy() is not None:
                client.token()
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"api-server not up after {timeout_s:.0f} s\n{af.tails()}")
        time.sleep(1)


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _task_report(af: AirflowProcesses, client: AirflowClient, runs: list[tuple[str, dict[str, Any]]]) -> str:
    """States of the given runs' task instances, with the newest log lines of the unsuccessful ones."""
    out = []
    home = Path(af.env["AIRFLOW_HOME"])
    for dag_id, run in runs:
        out.append(f"{dag_id} {run['dag_run_id']}: {run['state']}")
        for ti in client.task_instances(dag_id, run["dag_run_id"]):
            if ti["state"] in ("success", "skipped"):
                continue
            out.append(f"  {ti['task_id']}: {ti['state']} (try {ti.get('try_number')})")
            base = home / "logs" / f"dag_id={dag_id}" / f"run_id={run['dag_run_id']}" / f"task_id={ti['task_id']}"
            for log in sorted(base.glob("**/attempt=*.log"))[-1:]:
                out += ["    " + line[:400] for line in log.read_text(errors="replace").splitlines()[-30:]]
    return "\n".join(out)


def _wait_for_chain(
    af: AirflowProcesses, client: AirflowClient, known: set[str], timeout_s: float
) -> dict[str, list[dict[str, Any]]]:
    """The chain's runs that are not in ``known``, once every chain DAG has a new run that is not
    scheduled (ingest's hourly runs are) and no run of the chain is queued or running."""
    deadline = time.monotonic() + timeout_s
    while True:
        af.check_alive()
        new = {d: [r for r in client.runs(d) if r["dag_run_id"] not in known] for d in CHAIN}
        failed = [(d, r) for d, runs in new.items() for r in runs if r["state"] == "failed"]
        if failed:
            raise AssertionError(f"runs failed:\n{_task_report(af, client, failed)}")
        active = [(d, r) for d, runs in new.items() for r in runs if r["state"] not in ENDED]
        if not active and all(any(r["run_type"] != "scheduled" for r in new[d]) for d in CHAIN):
            return new
        if time.monotonic() > deadline:
            seen = {d: [(r["run_type"], r["state"]) for r in runs] for d, runs in new.items()}
            raise TimeoutError(f"chain not done after {timeout_s:.0f} s: {seen}\n{_task_report(af, client, active)}")
        time.sleep(3)


def _queued_asset_events(client: AirflowClient) -> dict[str, int]:
    """Asset-triggered runs waiting in Airflow's queue, per DAG (AssetDagRunQueue rows)."""
    counts = {d: client.request("GET", f"/api/v2/dags/{d}/assets/queuedEvents")["total_entries"] for d in CHAIN}
    return {d: n for d, n in counts.items() if n}


def _check_triggered_by(
    client: AirflowClient,
    day: int,
    runs: dict[str, dict[str, Any]],
    dag_id: str,
    upstream: tuple[str, ...],
) -> None:
    """``dag_id``'s run of the day was triggered by exactly one asset event of each upstream DAG's
    run of the same day, and started after they were emitted. (An upstream *run* may end a moment
    after its consumer starts: its last task emits the event, the run is marked done a scheduler
    loop later.) Airflow attaches every event since the DAG's previous asset-triggered run: none
    but the day's may be there."""
    run = runs[dag_id]
    assert run["run_type"] == "asset_triggered", (day, dag_id, run["run_type"])
    path = f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}/upstreamAssetEvents"
    events = client.request("GET", path)["asset_events"]
    expected = sorted((u, runs[u]["dag_run_id"]) for u in upstream)
    todays = [e for e in events if (e["source_dag_id"], e["source_run_id"]) in expected]
    earlier = [e["source_run_id"] for e in events if e not in todays]
    assert sorted((e["source_dag_id"], e["source_run_id"]) for e in todays) == expected, (day, dag_id, events)
    assert not earlier, f"day {day}: {dag_id} also consumed {earlier}"
    started = _when(run["start_date"])
    for e in todays:
        emitted, source_started = _when(e["timestamp"]), _when(runs[e["source_dag_id"]]["start_date"])
        assert source_started <= emitted <= started, (day, dag_id, e)


def _check_day_landed_once(wh: Any, events_file: Path) -> None:
    """One accepted batch of the file, and every row of it not quarantined in ``raw.events`` once."""
    batches = wh.query("select batch_id, status from raw.ingest_batches where file = ?", [str(events_file)])
    accepted = batches[batches["status"] == "accepted"]
    assert len(accepted) == 1, f"{events_file}: batches {batches.to_dict('records')}"
    batch_id = str(accepted["batch_id"].iloc[0])
    quarantined = set(wh.query("select row_number from raw.quarantine where batch_id = ?", [batch_id])["row_number"])
    day = pd.read_parquet(events_file, columns=["event_id"])
    expected = [e for n, e in enumerate(day["event_id"], start=1) if n not in quarantined]
    assert expected, events_file
    stored = wh.query(
        "select event_id, count(*) as n from raw.events where event_id in (select unnest(?)) group by event_id",
        [expected],
    )
    assert len(stored) == len(expected) and (stored["n"] == 1).all(), f"{events_file}: missing or duplicated rows"
    in_batch = wh.query("select count(*) as n from raw.events where _batch_id = ?", [batch_id])["n"].iloc[0]
    assert in_batch == len(expected)


def _check_deadline_alerts(af: AirflowProcesses, smtp: Any, publish_runs: list[str], timeout_s: float = 120) -> None:
    """One deadline alert per publish_recommendations run (the executor ran the DeadlineAlert's
    callback), and no failure alert (nothing failed)."""
    import email

    deadline = time.monotonic() + timeout_s
    while True:
        subjects = [email.message_from_bytes(m.original_content)["Subject"] for m in smtp.messages]
        missed = [s for s in subjects if "publish_recommendations missed its deadline" in s]
        if len(missed) >= len(publish_runs) or time.monotonic() > deadline:
            break
        af.check_alive()
        time.sleep(2)
    assert sorted(missed) == sorted(
        f"[interestflow] publish_recommendations missed its deadline ({run_id})" for run_id in publish_runs
    ), f"{subjects}\n{af.tail('scheduler', 80)}"
    assert len(subjects) == len(missed), subjects
    assert all(m.rcpt_tos == ["oncall@example.com"] for m in smtp.messages)


def test_two_days_run_through_the_real_scheduler_once_each_and_in_asset_order(
    scheduler_world: tuple[AirflowProcesses, AirflowClient], tmp_path: Path, tiny_shop: Path, monkeypatch, smtp_server
) -> None:
    from ml.simulate.living import LivingShop, LoopSettings
    from ml.warehouse import Warehouse

    af, client = scheduler_world
    # a fresh metadata database: nothing queued for the scheduler to start, no runs yet
    assert _queued_asset_events(client) == {}
    for dag_id in PAUSED:
        client.set_paused(dag_id, True)
    known = {r["dag_run_id"] for d in CHAIN for r in client.runs(d)}
    assert known == set(), known
    time_based = {d: len(client.runs(d)) for d in PAUSED}
    af.start("scheduler", [sys.executable, "-c", SCHEDULER])
    af.start("dag-processor", [airflow_bin(), "dag-processor"])

    # this process writes the days (the shop's users) beside the copied ones, in the state folder
    monkeypatch.setenv("INTERESTFLOW_HOME", af.env["INTERESTFLOW_HOME"])
    monkeypatch.delenv("INTERESTFLOW_LANDING", raising=False)
    monkeypatch.delenv("INTERESTFLOW_WAREHOUSE", raising=False)
    monkeypatch.delenv("INTERESTFLOW_ARTIFACTS", raising=False)
    shop = LivingShop(tiny_shop, LoopSettings(size="tiny", visit_share=0.5))
    lived = shop.days_done()
    assert lived, "the living shop fixture recorded no day"
    days = [max(lived) + n for n in range(1, N_DAYS + 1)]

    day_runs: dict[int, dict[str, dict[str, Any]]] = {}
    scheduled: list[dict[str, Any]] = []
    for day in days:
        t0 = time.monotonic()
        shop.write_day(day)
        client.trigger("ingest_events", {"paths": [str(shop.day_dir(day))]})
        new = _wait_for_chain(af, client, known, DAY_TIMEOUT_S)
        known |= {r["dag_run_id"] for runs in new.values() for r in runs}
        scheduled += [r for r in new["ingest_events"] if r["run_type"] == "scheduled"]
        mine = {d: [r for r in runs if r["run_type"] != "scheduled"] for d, runs in new.items()}
        assert {d: len(runs) for d, runs in mine.items()} == dict.fromkeys(CHAIN, 1), f"day {day}: {mine}"
        day_runs[day] = {d: runs[0] for d, runs in mine.items()}
        print(f"day {day}: the chain ran through the scheduler in {time.monotonic() - t0:.0f} s")

    # nothing is left to start: no asset-triggered run queued, no run of the chain active
    assert _queued_asset_events(client) == {}
    assert all(r["state"] in ENDED for d in CHAIN for r in client.runs(d))
    assert {d: len(client.runs(d)) for d in PAUSED} == time_based
    # an hourly ingest run found the (empty) landing folder and skipped: it emitted nothing
    for run in scheduled:
        states = {t["state"] for t in client.task_instances("ingest_events", run["dag_run_id"])}
        assert states == {"skipped"}, (run["dag_run_id"], states)

    for day, runs in day_runs.items():
        assert {d: r["state"] for d, r in runs.items()} == dict.fromkeys(CHAIN, "success"), day
        assert runs["ingest_events"]["run_type"] == "manual"
        assert runs["ingest_events"]["conf"]["paths"] == [str(shop.day_dir(day))]
        for dag_id, upstream in UPSTREAM.items():
            _check_triggered_by(client, day, runs, dag_id, upstream)
    assert _when(day_runs[days[1]]["ingest_events"]["start_date"]) >= _when(
        day_runs[days[0]]["publish_audiences"]["end_date"]
    )
    _check_deadline_alerts(af, smtp_server, [day_runs[d]["publish_recommendations"]["dag_run_id"] for d in days])
    af.stop()  # nothing writes the warehouse while it is read below

    wh = Warehouse.from_env()
    for day in days:
        _check_day_landed_once(wh, shop.day_dir(day) / "events.parquet")
