"""The embedded runtime: Airflow 3 on SQLite under ``.airflow/`` and DuckDB under
``.interestflow/`` (local-only defaults). Used by ``make demo``, ``make airflow`` and tests.

``run_dag`` executes a real DAG run in-process with ``dag.test()`` (every task runs, XComs,
mapped tasks, params and asset events included), which needs no scheduler.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ml import config

log = logging.getLogger(__name__)


def airflow_bin() -> str:
    exe = Path(sys.executable).parent / "airflow"
    return str(exe) if exe.exists() else "airflow"


def dbt_manifest_fresh() -> bool:
    manifest = config.DBT_DIR / "target" / "manifest.json"
    if not manifest.exists():
        return False
    newest = max(
        p.stat().st_mtime
        for p in config.DBT_DIR.rglob("*")
        if p.suffix in {".sql", ".yml", ".csv"} and "target" not in p.parts
    )
    return manifest.stat().st_mtime >= newest


def prepare(home: Path | None = None) -> dict[str, str]:
    """Set the local Airflow environment, migrate its metadata DB, create the pool, and
    parse the dbt project so cosmos renders from the manifest."""
    env = config.apply_airflow_env(home)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    config.state_dir().mkdir(parents=True, exist_ok=True)
    if not dbt_manifest_fresh():
        from ml.features.dbt import parse_in_process

        parse_in_process()
    _migrate_metadata()
    _warehouse_pool()
    return env


def _migrate_metadata() -> None:
    """What ``airflow db migrate`` does, in this process: the runtime imports Airflow anyway, and
    the command would start another interpreter to import it again (a no-op when the metadata DB
    is current)."""
    from airflow.utils import db

    db.upgradedb()


def _warehouse_pool() -> None:
    """Create (or reset) the ``warehouse`` pool with one slot, in this process: the migrated
    metadata DB is ready, and an ``airflow pools set`` would start another interpreter (~2 s)."""
    from airflow.models.pool import Pool

    Pool.create_or_update_pool("warehouse", 1, "DuckDB allows one writer process", include_deferred=False)


def load_dag(dag_id: str) -> Any:
    """The DAG ``dag_id``, parsed from its own file ``dags/<dag_id>.py`` (each DAG here lives in
    the file of its name), or from the whole folder when there is no such file. One file, not
    the folder: a run needs only its DAG, and parsing all nine DAG files (cosmos renders the dbt
    project in one of them) cost every in-process run about 0.25 s. A broken file of another DAG
    therefore fails only that DAG's runs, as under Airflow's scheduler."""
    from airflow.dag_processing.dagbag import DagBag

    if str(config.DAGS_DIR) not in sys.path:  # Airflow's own processes put the DAG folder on sys.path
        sys.path.insert(0, str(config.DAGS_DIR))
    own = config.DAGS_DIR / f"{dag_id}.py"
    bag = DagBag(dag_folder=str(own if own.is_file() else config.DAGS_DIR))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    dag = bag.get_dag(dag_id)
    if dag is None:
        raise KeyError(f"no DAG {dag_id!r} in {config.DAGS_DIR}")
    return dag


def run_dag(dag_id: str, conf: dict[str, Any] | None = None) -> Any:
    """Run one DAG for real, in-process; raise if the run does not succeed.

    A DAG's deadline alerts are left out here: the scheduler evaluates deadlines, and in-process
    runs have none (Airflow 3.3's ``dag.test`` also fails a run of a DAG with a ``DeadlineAlert``
    when it ends: it looks the alerts up as stored ids, which only the scheduler's DAG sync writes)."""
    dag = load_dag(dag_id)
    dag.deadline = None
    with frozen_heap():
        run = dag.test(run_conf=conf or {})
    state = str(getattr(run, "state", "unknown"))
    if "success" not in state:
        failed = [
            ti.task_id
            for ti in run.get_task_instances()
            if str(ti.state) not in ("success", "TaskInstanceState.SUCCESS")
        ]
        raise RuntimeError(f"DAG {dag_id} run {run.run_id} ended {state}; tasks not successful: {failed}")
    consume_queued_runs(run)
    return run


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Exempt the objects alive now (Airflow, the DAGs, imported libraries: about a million)
    from the cyclic garbage collector while a DAG runs in this process, then give them back.

    Every dbt task calls ``gc.collect()`` when it finishes (cosmos releases dbt's adapters that
    way); in one long-lived process each call rescanned that whole heap, ~0.35 s, 13 of
    build_features' 36 s on the tiny shop. Frozen, a call scans only what the run allocated
    (build_features: 36 s -> 22 s). A worker process that runs one task does not need this.
    Anything that dies during the run is still freed by reference counting, and a cycle among
    the frozen objects is collected after ``unfreeze`` (so is garbage that was waiting when the
    heap was frozen: no full collection first, it would cost the same ~0.35 s per run)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def consume_queued_runs(run: Any) -> list[str]:
    """Remove the asset-triggered runs that ``run``'s asset events queued (``AssetDagRunQueue``
    rows of those assets) and return the DAG ids they were for.

    The embedded runtime plays the scheduler's part: whoever called ``run_dag`` runs the
    downstream DAGs itself, so a scheduler started later on this metadata DB (``make airflow``
    after ``make demo``) must not start them again. The asset events stay in the history."""
    from airflow.models.asset import AssetDagRunQueue, AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import delete, select

    with create_session() as session:
        emitted = select(AssetEvent.asset_id).where(
            AssetEvent.source_dag_id == run.dag_id, AssetEvent.source_run_id == run.run_id
        )
        queued = session.scalars(select(AssetDagRunQueue).where(AssetDagRunQueue.asset_id.in_(emitted))).all()
        targets = sorted({q.target_dag_id for q in queued})
        session.execute(delete(AssetDagRunQueue).where(AssetDagRunQueue.asset_id.in_(emitted)))
    if targets:
        log.info("%s %s: consumed the queued asset-triggered runs of %s", run.dag_id, run.run_id, targets)
    return targets
