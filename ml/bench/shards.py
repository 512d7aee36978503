"""``python -m ml bench shards --size large --out DIR``: ``publish_recommendations`` with 1 and
with 2 shards on PostgreSQL, through the Celery topology of ``make scale-up`` (two workers).

A fresh PostgreSQL warehouse gets the shop (ingest, dbt build) and a champion (``--model``,
trained and promoted directly: the bench times publishing, not training). Then a private
Celery topology (its own metadata database, Redis key prefix and API port) is started on that
warehouse, and the ``publish_recommendations`` DAG is triggered through the REST API once per
shard count in ``--shards``, each run alone on the workers. Per run it records the wall seconds
(run start to end), each task's seconds and worker, and from each shard's return value its
users, rows, stages and peak RSS: the per-shard throughput and memory that the paper estimate
in ``docs/scale-out.md`` scales up.

Writes ``DIR/shards.json`` (``{"runs": {"1": {...}, "2": {...}}, "ratio_2_vs_1": ...}``) and
``DIR/shards.png``. Needs PostgreSQL and Redis (``INTERESTFLOW_PG_SERVER``,
``INTERESTFLOW_CELERY_BROKER``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from ml.bench import SHOP_SIZES, positive_int
from ml.defaults import ALL_CANDIDATES, DEFAULT_CANDIDATES
from ml.orchestration.scaleout import TERMINAL_RUN_STATES, record_seconds
from ml.settings import settings

NAME = "shards"
HELP = "publish_recommendations with 1 and 2 shards on PostgreSQL under two Celery workers"
TARGET_RATIO = 0.6  # 2 shards' publish wall against 1 shard's (issue #24)
# unpaused for the runs: each publish and the publish_audiences run its new version triggers
BENCH_DAGS = ("publish_recommendations", "publish_audiences")
# the champions it can train: the production candidates' configs (EASE on 6,000 items), or item kNN
CHAMPIONS = {
    c["model"]: c["params"] for c in (*ALL_CANDIDATES, *DEFAULT_CANDIDATES) if c["model"] in ("ease", "item_knn")
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", choices=SHOP_SIZES, default="large", help="shop size")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--model", choices=sorted(CHAMPIONS), default="ease", help="the champion (trained directly)")
    p.add_argument("--shards", type=positive_int, nargs="+", default=[1, 2], help="shard counts, one run each")
    p.add_argument("--workdir", type=Path, help="shop and state (default: DIR/work)")
    p.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    p.add_argument("--out", type=Path, required=True)


def _return_value(client: Any, run_id: str, task_id: str, map_index: int) -> Any:
    """A task instance's return value through the REST API (None when it cannot be read)."""
    try:
        res = client.request(
            "GET",
            f"/api/v2/dags/publish_recommendations/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value",
            params={"map_index": map_index, "deserialize": "true", "stringify": "false"},
        )
    except Exception as exc:  # (a missing entry or an API change: reported, not fatal)
        return {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    value = res.get("value")
    return json.loads(value) if isinstance(value, str) else value


def publish_run(client: Any, shards: int) -> dict[str, Any]:
    """One ``publish_recommendations`` run with ``shards`` shards, alone on the workers: waits
    for it and for the ``publish_audiences`` run its new version triggers."""
    import time

    audiences_before = {r["dag_run_id"] for r in client.runs("publish_audiences")}
    run_id = client.trigger("publish_recommendations", {"shards": shards})["dag_run_id"]
    run = client.wait_run("publish_recommendations", run_id, timeout_s=3600)
    tis = client.task_instances("publish_recommendations", run_id)
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        new = [r for r in client.runs("publish_audiences") if r["dag_run_id"] not in audiences_before]
        if new and all(r["state"] in TERMINAL_RUN_STATES for r in new):
            break
        time.sleep(3)
    per_shard = []
    for t in sorted((t for t in tis if t["task_id"] == "score_shard"), key=lambda t: t["map_index"]):
        value = _return_value(client, run_id, "score_shard", t["map_index"]) or {}
        stages = value.get("stages") or {}
        per_shard.append(
            {
                "shard": t["map_index"],
                "worker": t.get("hostname"),
                "seconds": record_seconds(t),
                "users": value.get("users"),
                "rows": value.get("rows"),
                "peak_rss_mb": max((s.get("peak_rss_mb", 0.0) for s in stages.values()), default=None),
                "stages": {n: s["seconds"] for n, s in stages.items()},
            }
        )
    switch: dict[str, Any] = next((t for t in tis if t["task_id"] == "switch"), {})
    plan: dict[str, Any] = next((t for t in tis if t["task_id"] == "plan"), {})
    return {
        "state": run["state"],
        "wall_seconds": record_seconds(run),
        "plan_seconds": record_seconds(plan),
        "switch_seconds": record_seconds(switch),
        "switch": _return_value(client, run_id, "switch", -1),
        "shards": per_shard,
        "shard_workers": sorted({s["worker"] for s in per_shard if s["worker"]}),
    }


def prepare_warehouse(shop: Path, url: str, model: str, state: Path) -> dict[str, Any]:
    """Ingest, dbt build and a promoted champion on the warehouse at ``url`` (direct calls)."""
    from ml.bench.measure import measure
    from ml.features.dbt import build
    from ml.ingest.landing import ingest_paths
    from ml.tasks.training import evaluate_and_gate, train_candidate
    from ml.warehouse import Warehouse

    os.environ.update(
        INTERESTFLOW_WAREHOUSE=url,
        INTERESTFLOW_HOME=str(state),
        INTERESTFLOW_ARTIFACTS=str(state / "artifacts"),
    )
    wh = Warehouse(url)
    took = {}
    with measure("ingest") as m:
        ingest_paths([shop], wh)
    took["ingest"] = round(m.seconds, 1)
    with measure("dbt") as m:
        build(wh, target_path=state / "target")
    took["dbt_build"] = round(m.seconds, 1)
    with measure("train") as m:
        cand = train_candidate(model, CHAMPIONS[model], run_id="bench-shards")
        evaluate_and_gate([cand], run_id="bench-shards")
    took[f"fit:{model}"] = round(m.seconds, 1)
    return took


def run(args: argparse.Namespace) -> int:
    from ml.bench.measure import table, write_json
    from ml.orchestration.scaleout import Topology, create_database, database_url, drop_database, free_port
    from ml.shop.generate import write_shop

    out: Path = args.out
    work = args.workdir or out / "work"
    shop = work / f"shop-{args.size}-{args.seed}"
    if not (shop / "events.parquet").exists():
        print(f"generating the {args.size} shop into {shop}", flush=True)
        write_shop(shop, size=args.size, seed=args.seed)
    state = work / "state"
    shutil.rmtree(state, ignore_errors=True)
    pg_server = settings().pg_server
    tag = uuid.uuid4().hex[:8]
    wh_db = f"ift_bench_shards_{tag}"
    create_database(pg_server, wh_db)
    url = database_url(pg_server, wh_db)
    topo = None
    try:
        print("preparing the warehouse (ingest, dbt build, champion)", flush=True)
        setup = prepare_warehouse(shop, url, args.model, state / "direct")
        topo = Topology.from_env(
            state=state / "scaleout",
            pg_server=pg_server,
            airflow_db=f"ift_bench_shards_airflow_{tag}",
            warehouse_url=url,
            key_prefix=f"ift-bench-shards-{tag}",
            api_port=free_port(),
            tied_to_caller=True,
        )
        topo.up(wait_s=1800)
        client = topo.client()
        # (the topology waits for the pipeline's DAGs; publish_audiences may still be parsing)
        client.wait_dags(BENCH_DAGS)
        for dag_id in BENCH_DAGS:
            client.set_paused(dag_id, False)
        runs = {}
        for n in args.shards:
            print(f"publish_recommendations with {n} shard(s)", flush=True)
            runs[str(n)] = publish_run(client, n)
            print(f"  {runs[str(n)]['state']} in {runs[str(n)]['wall_seconds']} s", flush=True)
    finally:
        if topo is not None:
            topo.down(drop_databases=not args.keep)
        if not args.keep:
            drop_database(pg_server, wh_db)
    one, two = (runs.get("1") or {}).get("wall_seconds"), (runs.get("2") or {}).get("wall_seconds")
    ratio = round(two / one, 3) if one and two else None
    payload = {
        "size": args.size,
        "seed": args.seed,
        "model": args.model,
        "setup_seconds": setup,
        "runs": runs,
        "ratio_2_vs_1": ratio,
        "target_ratio": TARGET_RATIO,
        "met": ratio is not None and ratio <= TARGET_RATIO and len((runs.get("2") or {})["shard_workers"]) == 2,
    }
    write_json(out, "shards.json", payload)
    rows = [
        {"shards": n, "state": r["state"], "wall_s": r["wall_seconds"], "plan_s": r["plan_seconds"],
         "switch_s": r["switch_seconds"], "workers": ",".join(r["shard_workers"])}
        for n, r in runs.items()
    ]  # fmt: skip
    print(table(rows))
    print(f"2 shards vs 1: {ratio} (target <= {TARGET_RATIO})")
    print(f"wrote {out / 'shards.json'} and {chart(payload, out)}")
    return 0


def chart(payload: dict[str, Any], out: Path) -> Path:
    """``shards.png``: the publish run's seconds per shard count (plan, slowest shard, switch)."""
    from ml.bench.plots import grouped_bars

    shown = {
        f"{n} shard(s)": {
            "plan": r["plan_seconds"] or 0.0,
            "slowest shard": max((s["seconds"] or 0.0 for s in r["shards"]), default=0.0),
            "switch": r["switch_seconds"] or 0.0,
            "whole run": r["wall_seconds"] or 0.0,
        }
        for n, r in payload["runs"].items()
    }
    return grouped_bars(out / "shards.png", f"publish_recommendations, {payload['size']} shop", shown, "seconds")
