"""The scale-out topology on the machine's PostgreSQL and Redis: Airflow 3 with the
CeleryExecutor and two workers, driven through the REST API like an external client.

One topology (own metadata and warehouse databases, own Redis key prefix, a free port) serves
both tests and is torn down afterwards, databases included.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest

from ml.orchestration.scaleout import (
    LOCAL_PG,
    LOCAL_REDIS,
    PIPELINE_DAGS,
    AirflowClient,
    Topology,
    Worker,
    database_url,
    free_port,
    pg_reachable,
    prepare_pipeline,
    redis_reachable,
    run_pipeline,
)
from ml.publish.tables import version_for
from ml.warehouse import Warehouse
from tests.conftest import require_service

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(2700)]

K = 10


def _running(rec: dict[str, Any]) -> bool:
    try:
        p = psutil.Process(int(rec["pid"]))
        return abs(p.create_time() - float(rec["create_time"])) < 1.0 and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _log_tail(topo: Topology, dag_id: str, run_id: str, task_id: str, lines: int = 40) -> str:
    """The last events of a task's newest log (Airflow 3 writes JSON lines)."""
    base = topo.airflow_home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    logs = sorted(base.glob("**/attempt=*.log"))
    if not logs:
        return f"(no log under {base})"
    events = []
    for line in logs[-1].read_text(errors="replace").splitlines():
        try:
            events.append(str(json.loads(line).get("event", line)))
        except json.JSONDecodeError:
            events.append(line)
    return f"--- {logs[-1]}\n" + "\n".join(events[-lines:])


def _report(topo: Topology, runs: dict[str, dict[str, Any]], tis: dict[str, list[dict[str, Any]]]) -> str:
    """Why a pipeline did not succeed: run states, failed tasks with their log tails, process logs."""
    out = [f"{d}: {r['state']} ({r['dag_run_id']})" for d, r in runs.items()]
    for dag_id, items in tis.items():
        for t in items:
            if t["state"] in ("failed", "up_for_retry", "running", "queued"):
                out.append(f"{dag_id}.{t['task_id']}: {t['state']} on {t.get('hostname')} try {t.get('try_number')}")
                out.append(_log_tail(topo, dag_id, runs[dag_id]["dag_run_id"], t["task_id"]))
        blocked = [t["task_id"] for t in items if t["state"] == "upstream_failed"]
        if blocked:
            out.append(f"{dag_id}: upstream_failed: {blocked}")
    out.append(topo.log_tails(lines=15))
    return "\n".join(out)


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory):
    require_service(pg_reachable(database_url(LOCAL_PG, "postgres")), f"PostgreSQL at {LOCAL_PG}")
    require_service(redis_reachable(LOCAL_REDIS), f"Redis at {LOCAL_REDIS}")
    tag = uuid.uuid4().hex[:8]
    topo = Topology.from_env(
        state=tmp_path_factory.mktemp("scaleout"),
        pg_server=LOCAL_PG,
        airflow_db=f"ift_airflow_{tag}",
        warehouse_url=f"{LOCAL_PG}/ift_wh_{tag}",
        broker_url=LOCAL_REDIS,
        key_prefix=f"ift-{tag}",
        api_port=free_port(),
        workers=(Worker("worker1", 2), Worker("worker2", 2)),
        heartbeat_timeout_s=45,
        tied_to_caller=True,  # a killed test run takes its topology down with it
    )
    try:
        topo.up(wait_s=1200, log=lambda msg: print(f"[scale-up] {msg}"))
        yield topo
    finally:
        started = [p for p in (topo.pids_dir.glob("*.pid") if topo.pids_dir.exists() else [])]
        records = {p.stem: json.loads(p.read_text()) for p in started}
        stopped = topo.down(grace_s=15, drop_databases=True, log=lambda msg: print(f"[scale-down] {msg}"))
        print(f"[scale-down] stopped {stopped}")
        alive = [n for n, rec in records.items() if _running(rec)]
        assert not alive, f"scale-down left processes running: {alive}"
        assert not list(topo.pids_dir.glob("*.pid"))


@pytest.fixture(scope="module")
def client(topology: Topology) -> AirflowClient:
    c = topology.client()
    c.token()  # authenticated as an external client: JWT from /auth/token
    return c


def _check_published(wh: Warehouse, run_id: str) -> None:
    recs = wh.query("select * from serving.recommendations_current")
    active = set(wh.query("select distinct user_id from marts.interaction_events")["user_id"])
    assert set(recs["user_id"]) == active
    assert not recs.duplicated(["user_id", "rank"]).any()
    assert not recs.duplicated(["user_id", "item_id"]).any()
    assert (recs.groupby("user_id")["item_id"].nunique() == K).all()
    assert set(recs["run_id"]) == {run_id}
    log = wh.query("select version, run_id from serving.publish_log where name = 'recommendations'")
    assert log["run_id"].tolist().count(run_id) == 1
    assert version_for(run_id) in set(log["version"])


def test_pipeline_triggered_through_the_rest_api_runs_on_both_workers(topology, client, tiny_shop: Path):
    prepare_pipeline(client)
    res = run_pipeline(client, {"paths": [str(tiny_shop)]}, timeout_s=2400)
    assert res.ok and set(res.runs) == set(PIPELINE_DAGS), _report(topology, res.runs, res.task_instances)
    hosts = res.hostnames()
    assert hosts == {"worker1", "worker2"}, f"tasks ran on {hosts}, expected both workers"
    per_host = {h: sum(t.get("hostname") == h for tis in res.task_instances.values() for t in tis) for h in hosts}
    print(f"pipeline in {res.seconds:.0f}s, task instances per worker: {per_host}")
    # publishing's shards (one mapped task each: the warehouse pool's 4 slots) ran on both workers
    shards = [t for t in res.task_instances["publish_recommendations"] if t["task_id"] == "score_shard"]
    assert sorted(t["map_index"] for t in shards) == [0, 1, 2, 3]
    assert {t["hostname"] for t in shards} == {"worker1", "worker2"}, shards
    _check_published(Warehouse(topology.warehouse_url), res.runs["publish_recommendations"]["dag_run_id"])


def test_a_task_on_a_killed_worker_is_retried_on_the_other_without_duplicates(topology, client):
    wh = Warehouse(topology.warehouse_url)
    run = client.trigger("publish_recommendations")
    run_id = run["dag_run_id"]
    deadline = time.monotonic() + 900
    victim = None
    shard = None
    while victim is None:
        tis = client.task_instances("publish_recommendations", run_id)
        switch = next((t for t in tis if t["task_id"] == "switch"), None)
        assert switch is None or switch["state"] != "success", "publish finished before a worker could be killed"
        running = [t for t in tis if t["task_id"] == "score_shard" and t["state"] == "running" and t.get("hostname")]
        if running:
            victim, shard = running[0]["hostname"], running[0]["map_index"]
        assert time.monotonic() < deadline, f"no shard of publish ever ran: {tis}"
        time.sleep(0.2)
    survivor = ({w.name for w in topology.workers} - {victim}).pop()
    killed = topology.kill_worker(victim)
    print(f"killed {victim} ({killed} processes) while it ran shard {shard}; waiting for the retry on {survivor}")
    final = client.wait_run("publish_recommendations", run_id, timeout_s=1200)
    tis = client.task_instances("publish_recommendations", run_id)
    report = _report(topology, {"publish_recommendations": final}, {"publish_recommendations": tis})
    assert final["state"] == "success", report
    retried = next(t for t in tis if t["task_id"] == "score_shard" and t["map_index"] == shard)
    assert retried["try_number"] >= 2, report
    assert retried["hostname"] == survivor, report
    _check_published(wh, run_id)
    with wh.connect() as con:
        has_log = wh.table_exists(con, "ml", "logged_slates")
    if has_log:
        dup = wh.query(
            "select user_id, position, count(*) as n from ml.logged_slates where run_id = ? "
            "group by user_id, position having count(*) > 1",
            [run_id],
        )
        assert dup.empty, dup.head()
