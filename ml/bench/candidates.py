"""``python -m ml bench candidates``: every retrain_models candidate on the DAG's own holdout.

Generates the synthetic shop (or reuses the one in ``--shop`` or ``DIR``), ingests it into a
fresh DuckDB warehouse under ``DIR``, builds dbt and the category transitions (the warehouse
that ``build_features`` leaves for ``retrain_models``, its gates aside), then calls
:func:`ml.tasks.training.train_candidate` for each config of ``ml.defaults.ALL_CANDIDATES`` (or
of ``--candidates``) with the DAG's default ``holdout_days``: the function the DAG's mapped
``train`` task calls. Every stage runs in a fresh process, as an Airflow task does: its peak RSS
is its own, and a candidate that runs out of memory or past ``--timeout`` is recorded as an
error, not a crash. Finally :func:`ml.tasks.training.evaluate_and_gate` with the DAG's default
gate Params says which candidate it would promote.

``DIR/candidates.json``: ``{"setup": {step: {"value", "error", "seconds", "peak_rss_mb"}},
"candidates": [{"model", "params", "task_seconds", "peak_rss_mb", "metrics", "version_id",
"error"}], "gate": {...}}``, rewritten after every candidate so that a long run keeps what it
measured.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ml.bench import SHOP_SIZES
from ml.bench.measure import measure, peak_rss_mb_lifetime, rss_mb, table, write_json
from ml.errors import UsageError

NAME = "candidates"
HELP = "every retrain_models candidate on the DAG's time-based holdout (metrics, fit seconds, peak RSS)"

SIZES = SHOP_SIZES
HOLDOUT_DAYS = 7.0  # the retrain_models DAG's default `holdout_days` Param
K = 10
COLUMNS = [f"ndcg@{K}", f"precision@{K}", f"recall@{K}", f"coverage@{K}", f"new_user_hit_rate@{K}"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ml.defaults import MODEL_NAMES

    p.add_argument("--size", choices=SIZES, default="default", help="synthetic shop size")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, required=True, help="output folder (candidates.json, warehouse, shop)")
    p.add_argument("--shop", type=Path, default=None, help="an existing shop folder (default: DIR/shop-SIZE-seedN)")
    p.add_argument("--models", default=",".join(MODEL_NAMES), help="comma-separated subset of the candidates' models")
    p.add_argument(
        "--candidates",
        type=Path,
        default=None,
        help="a JSON file with a list of {model, params}, as the DAG's `candidates` Param (default: ALL_CANDIDATES)",
    )
    p.add_argument("--timeout", type=float, default=None, help="seconds one candidate may take (default: no limit)")
    p.add_argument("--no-gate", action="store_true", help="leave out evaluate_and_gate")


def read_candidate_file(path: Path) -> list[dict[str, Any]]:
    """The configs of a ``--candidates`` file: a JSON list of ``{model, params}``, as the
    ``retrain_models`` DAG's ``candidates`` Param takes. A file that is missing, not that, or
    names an unknown model is a :class:`UsageError` that names the file."""
    from ml.defaults import MODEL_NAMES

    try:
        configs = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UsageError(f"--candidates {path}: {err}") from None
    if not (isinstance(configs, list) and configs and all(isinstance(c, dict) for c in configs)):
        raise UsageError(f'--candidates {path}: expected a non-empty JSON list of {{"model": ..., "params": {{...}}}}')
    unknown = sorted({str(c.get("model")) for c in configs} - set(MODEL_NAMES))
    if unknown:
        raise UsageError(f"--candidates {path}: unknown models {unknown}; known: {', '.join(MODEL_NAMES)}")
    return configs


@dataclass
class TaskRun:
    """One function run in a fresh process: its return value or the error that stopped it,
    wall seconds (process start included) and the process's peak RSS (its ``ru_maxrss``, which
    starts from this bench's RSS at the fork: the bench process itself stays small)."""

    value: Any = None
    error: str | None = None
    seconds: float = 0.0
    peak_rss_mb: float = 0.0


@dataclass
class Outcome:
    """One candidate: ``train_candidate``'s holdout metrics (``metrics["fit_seconds"]`` is the
    holdout fit alone) or the error that stopped it. ``task_seconds`` is the whole task: process
    start, holdout fit and metrics, refit on all data, artifact, registry."""

    model: str
    params: dict[str, Any]
    task_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    version_id: str | None = None
    error: str | None = None


def _task_body(fn: Callable[..., Any], kwargs: dict[str, Any], conn: Connection) -> None:
    try:
        conn.send({"value": fn(**kwargs), "peak_rss_mb": peak_rss_mb_lifetime()})
    except Exception as exc:
        conn.send({"error": f"{type(exc).__name__}: {str(exc)[:500]}", "peak_rss_mb": peak_rss_mb_lifetime()})


def in_task_process(fn: Callable[..., Any], timeout: float | None = None, **kwargs: Any) -> TaskRun:
    """``fn(**kwargs)`` in a fresh (spawned) process, killed after ``timeout`` seconds. A process
    that dies (e.g. out of memory) or times out gives an error."""
    ctx = mp.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    task = ctx.Process(target=_task_body, args=(fn, kwargs, send), daemon=True)
    reply: dict[str, Any] = {}
    with measure(fn.__name__) as st:
        task.start()
        send.close()  # so that a process that dies unblocks the read below
        try:
            if receive.poll(timeout):
                reply = receive.recv()
            else:
                task.kill()
                reply = {"error": f"timed out after {timeout:.0f} s"}
        except EOFError:  # died without a word
            pass
        task.join()
    if not reply:
        code = task.exitcode or 0
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        reply = {"error": f"the task process died ({how}; SIGKILL: out of memory?)"}
    peak = reply.get("peak_rss_mb") or st.peak_rss_mb  # sampled from outside when it died
    return TaskRun(reply.get("value"), reply.get("error"), round(st.seconds, 1), round(peak, 1))


def prepare_warehouse(shop: Path, url: str, dbt_target: Path) -> dict[str, float]:
    """Ingest ``shop`` into the empty warehouse at ``url``, build dbt, fit the category
    transitions. Returns each step's seconds."""
    from ml.features.dbt import build
    from ml.ingest.landing import ingest_paths
    from ml.tasks.features import fit_category_transitions
    from ml.warehouse import Warehouse

    wh = Warehouse(url)
    with measure("ingest") as ingest:
        ingest_paths([shop], wh, gate=False)
    with measure("dbt_build") as dbt:
        build(wh, target_path=dbt_target)  # never dbt/target, which the DAGs render from
    with measure("category_transitions") as trans:
        fit_category_transitions(run_id="bench_candidates", warehouse=url)
    return {st.name: round(st.seconds, 1) for st in (ingest, dbt, trans)}


def train(candidate: dict[str, Any], run_id: str, url: str, timeout: float | None) -> Outcome:
    """One candidate, as the DAG's mapped ``train`` task runs it."""
    from ml.tasks.training import train_candidate

    task = in_task_process(
        train_candidate,
        timeout,
        model=candidate["model"],
        params=candidate.get("params"),
        run_id=run_id,
        holdout_days=HOLDOUT_DAYS,
        warehouse=url,
    )
    result = task.value or {}
    params = dict(candidate.get("params") or {})
    metrics, version = result.get("metrics", {}), result.get("version_id")
    return Outcome(candidate["model"], params, task.seconds, task.peak_rss_mb, metrics, version, task.error)


def gate(outcomes: list[Outcome], run_id: str, url: str) -> dict[str, Any]:
    """``evaluate_and_gate`` over every candidate that trained, with the DAG's default Params."""
    from ml.defaults import GATE_MARGIN, GATE_MAX_COVERAGE_DROP, GATE_MIN_COVERAGE, GATE_MIN_NEW_USER_HIT_RATE
    from ml.tasks.training import evaluate_and_gate

    trained = [o for o in outcomes if o.version_id]
    decision = evaluate_and_gate(
        [{"version_id": o.version_id, "model": o.model, "params": o.params, "metrics": o.metrics} for o in trained],
        run_id=run_id,
        margin=GATE_MARGIN,
        min_coverage=GATE_MIN_COVERAGE,
        max_coverage_drop=GATE_MAX_COVERAGE_DROP,
        min_new_user_hit_rate=GATE_MIN_NEW_USER_HIT_RATE,
        warehouse=url,
    )
    champion = next((o.model for o in trained if o.version_id == decision.get("champion")), None)
    return {**decision, "champion_model": champion}


def render(outcomes: list[Outcome]) -> str:
    """The candidates by nDCG@10, failures last with their errors."""
    rows = [
        {"model": o.model, **{m: o.metrics.get(m, float("nan")) for m in COLUMNS}}
        | {"fit_s": f"{o.metrics.get('fit_seconds', 0.0):.1f}", "task_s": f"{o.task_seconds:.1f}"}
        | {"peak_rss_mb": f"{o.peak_rss_mb:.0f}", "params": json.dumps(o.params, separators=(",", ":"))}
        for o in sorted(outcomes, key=lambda o: -o.metrics.get(f"ndcg@{K}", -1.0))
    ]
    errors = "".join(f"\n{o.model} failed: {o.error}" for o in outcomes if o.error)
    return table(rows, ["model", *COLUMNS, "fit_s", "task_s", "peak_rss_mb", "params"]) + errors


def run(args: argparse.Namespace) -> int:
    from ml.bench.pipeline import fresh_warehouse
    from ml.config import environment
    from ml.defaults import ALL_CANDIDATES, MODEL_NAMES
    from ml.shop.generate import write_shop

    # a SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so the running task process is ended too
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    configs = read_candidate_file(args.candidates) if args.candidates else ALL_CANDIDATES
    wanted = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(wanted) - set(MODEL_NAMES))
    if unknown:
        raise UsageError(f"unknown models {unknown}; known: {', '.join(MODEL_NAMES)}")
    out = Path(args.out).resolve()
    shop = (args.shop or out / f"shop-{args.size}-seed{args.seed}").resolve()
    payload: dict[str, Any] = {"size": args.size, "seed": args.seed, "shop": str(shop), "holdout_days": HOLDOUT_DAYS}
    payload["bench_process_rss_mb"] = round(rss_mb(), 1)
    steps: dict[str, TaskRun] = {}
    if not (shop / "events.parquet").exists():
        steps["generate"] = in_task_process(write_shop, out=shop, size=args.size, seed=args.seed)
    url = fresh_warehouse("duckdb", out, "", "candidates")
    run_id = f"bench_candidates__{args.size}"
    outcomes: list[Outcome] = []
    with environment(
        INTERESTFLOW_WAREHOUSE=url,
        INTERESTFLOW_HOME=str(out / "state"),
        INTERESTFLOW_ARTIFACTS=str(out / "state" / "artifacts"),
    ):
        steps["prepare"] = in_task_process(prepare_warehouse, shop=shop, url=url, dbt_target=out / "dbt-target")
        payload["setup"] = {name: asdict(step) for name, step in steps.items()}
        failed = [f"{name}: {step.error}" for name, step in steps.items() if step.error]
        if failed:
            write_json(out, "candidates.json", payload)
            print("error: " + "; ".join(failed))
            return 1
        print(f"{args.size} shop ready: {steps['prepare'].value}", flush=True)
        for cand in (c for c in configs if c["model"] in wanted):
            o = train(cand, run_id, url, args.timeout)
            outcomes.append(o)
            ndcg = o.metrics.get(f"ndcg@{K}", float("nan"))
            print(f"  {o.model:<11} ndcg@{K} {ndcg:.4f} {o.task_seconds:8.1f} s {o.peak_rss_mb:7.0f} MB", flush=True)
            payload["candidates"] = [asdict(x) for x in outcomes]
            write_json(out, "candidates.json", payload)
        if not args.no_gate and any(o.version_id for o in outcomes):
            payload["gate"] = gate(outcomes, run_id, url)
    payload["machine"] = {"cpus": os.cpu_count(), "load_avg_end": list(os.getloadavg())}
    path = write_json(out, "candidates.json", payload)
    chart(outcomes, out, args.size)
    print(f"\n{args.size} shop, time-based holdout of the last {HOLDOUT_DAYS:g} days, k={K}")
    print(render(outcomes))
    if "gate" in payload:
        print(f"gate: {payload['gate']['reason']}")
    print(f"wrote {path}")
    return 0


def chart(outcomes: list[Outcome], out: Path, size: str) -> Path:
    """``candidates.png``: nDCG@K of each candidate that trained."""
    from ml.bench.plots import bars

    done = {o.model: o.metrics[f"ndcg@{K}"] for o in outcomes if f"ndcg@{K}" in o.metrics}
    return bars(out / "candidates.png", f"Candidates on the {size} shop's time-based holdout", done, f"nDCG@{K}")
