"""Task functions of the retrain_models DAG: train candidates, evaluate, gate."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from typing import Any

import numpy as np

from ml import config
from ml.defaults import DEFAULT_CANDIDATES, FAMILY, PRIMARY_METRIC  # noqa: F401
from ml.features.interactions import decayed, load_interaction_events, snapshot_id
from ml.warehouse import Warehouse

log = logging.getLogger(__name__)


def train_candidate(
    model: str,
    params: dict[str, Any] | None = None,
    run_id: str = "manual",
    holdout_days: float = 7.0,
    k: int = 10,
    half_life_days: float = 14.0,
    warehouse: str | None = None,
) -> dict[str, Any]:
    """Train one candidate: evaluate on a time-based holdout, refit on all data, register."""
    from ml.evaluate import EvalContext, evaluate, temporal_split
    from ml.evaluate.metrics import novelty_at_k
    from ml.recommend import InteractionData, make_model
    from ml.registry import ModelVersion, Registry, save_artifact

    params = dict(params or {})
    wh = Warehouse.from_env(warehouse)
    events = load_interaction_events(wh)
    if events.empty:
        raise ValueError("marts.interaction_events is empty: ingest data and build features first")
    train, test, cutoff = temporal_split(events, holdout_days)
    tr = decayed(train, cutoff, half_life_days)
    data = InteractionData.from_frame(tr)
    t0 = time.perf_counter()
    est = make_model(model, **params).fit(data.matrix)
    fit_seconds = time.perf_counter() - t0
    # holdout: items a known user engaged with after the cutoff that were new to them
    te = test[test["user_id"].isin(data.user_index) & test["item_id"].isin(data.item_index)]
    rows = te["user_id"].map(data.user_index).to_numpy()
    cols = te["item_id"].map(data.item_index).to_numpy()
    seen = set(zip(*data.matrix.nonzero(), strict=True))
    relevant_by_user: dict[int, set[int]] = {}
    for r, c in zip(rows, cols, strict=True):
        if (r, c) not in seen:
            relevant_by_user.setdefault(int(r), set()).add(int(c))
    eval_rows = np.array(sorted(relevant_by_user), dtype=np.int64)
    metrics: dict[str, float] = {}
    if len(eval_rows):
        recs, _ = est.recommend(data.matrix, eval_rows, k=k)
        pop = np.asarray((data.matrix > 0).sum(axis=0)).ravel() / max(data.matrix.shape[0], 1)
        ctx = EvalContext(n_items=data.matrix.shape[1], item_popularity=pop)
        metrics = evaluate(recs, [relevant_by_user[int(r)] for r in eval_rows], k, ctx)
        metrics[f"novelty@{k}"] = novelty_at_k(recs, [], k, ctx)
    metrics["eval_users"] = float(len(eval_rows))
    metrics["fit_seconds"] = round(fit_seconds, 3)
    # refit on everything for serving
    as_of = events["event_at"].max()
    full = InteractionData.from_frame(decayed(events, as_of, half_life_days))
    t0 = time.perf_counter()
    final = make_model(model, **params).fit(full.matrix)
    train_seconds = time.perf_counter() - t0
    snap = snapshot_id(events, as_of)
    mv = ModelVersion(
        family=FAMILY,
        model_name=model,
        params={**final.get_params(), "half_life_days": half_life_days, "holdout_days": holdout_days},
        metrics=metrics,
        snapshot_id=snap,
        artifact_path="",
        artifact_bytes=0,
        train_seconds=round(train_seconds, 3),
        run_id=run_id,
    )
    artifact = {
        "model": final,
        "user_ids": full.user_ids,
        "item_ids": full.item_ids,
        "as_of": as_of,
        "half_life_days": half_life_days,
    }
    mv.artifact_path, mv.artifact_bytes = save_artifact(artifact, FAMILY, mv.version_id)
    Registry(wh).register(mv)
    log.info("registered %s %s", mv.version_id, metrics)
    return {"version_id": mv.version_id, "model": model, "metrics": metrics, "snapshot_id": snap}


def smoke_load(version_id: str, n_users: int = 20, warehouse: str | None = None) -> dict[str, Any]:
    """Reload a version's artifact in a fresh Python process and score a sample of users."""
    code = f"import json,sys; from ml.tasks.training import _smoke_in_process as f; print(json.dumps(f({version_id!r}, {n_users})))"
    env_wh = ["INTERESTFLOW_WAREHOUSE=" + (warehouse or config.warehouse_url())]
    import os

    env = {**os.environ, **dict(e.split("=", 1) for e in env_wh), "PYTHONPATH": str(config.PROJECT_ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode != 0:
        return {"ok": False, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    return {"ok": True, **json.loads(proc.stdout.strip().splitlines()[-1])}


def _smoke_in_process(version_id: str, n_users: int) -> dict[str, Any]:
    from ml.registry import Registry, load_artifact

    mv = Registry().get(version_id)
    art = load_artifact(mv["artifact_path"])
    model = art["model"]
    import scipy.sparse as sp

    n_items = len(art["item_ids"])
    rng = np.random.default_rng(0)
    X = sp.random(n_users, n_items, density=min(1.0, 5.0 / max(n_items, 1)), format="csr", random_state=rng)
    idx, sc = model.recommend(X.astype(np.float32), k=10)
    finite = np.isfinite(sc[idx >= 0]).all()
    return {"users_scored": int(idx.shape[0]), "finite": bool(finite)}


def evaluate_and_gate(
    candidates: list[dict[str, Any]],
    run_id: str = "manual",
    margin: float = 0.0,
    min_coverage: float = 0.0,
    warehouse: str | None = None,
) -> dict[str, Any]:
    """Pick the best candidate on the primary metric, then promote it only if it beats the
    champion by ``margin`` without falling below the coverage guard and after a smoke load."""
    from ml.registry import Registry

    reg = Registry(Warehouse.from_env(warehouse))
    ok = [c for c in candidates if c and PRIMARY_METRIC in c.get("metrics", {})]
    if not ok:
        reason = "no candidate produced holdout metrics"
        reg.record_decision(FAMILY, run_id, None, None, False, reason, {})
        return {"promoted": False, "reason": reason}
    best = max(ok, key=lambda c: c["metrics"][PRIMARY_METRIC])
    champ = reg.champion(FAMILY)
    b = best["metrics"][PRIMARY_METRIC]
    details: dict[str, Any] = {"candidates": {c["version_id"]: c["metrics"] for c in ok}}
    cov = best["metrics"].get("coverage@10", 1.0)
    if cov < min_coverage:
        promoted, reason = False, f"coverage@10 {cov:.3f} below guard {min_coverage:.3f}"
    elif champ and champ["version_id"] == best["version_id"]:
        promoted, reason = False, f"{best['version_id']} is already champion"
    elif champ and b < champ["metrics"].get(PRIMARY_METRIC, 0.0) + margin:
        promoted = False
        reason = (
            f"challenger {best['version_id']} {PRIMARY_METRIC}={b:.4f} does not beat champion "
            f"{champ['version_id']} {champ['metrics'].get(PRIMARY_METRIC, 0.0):.4f} + margin {margin}"
        )
    else:
        smoke = smoke_load(best["version_id"], warehouse=warehouse)
        details["smoke_load"] = smoke
        if not smoke.get("ok") or not smoke.get("finite"):
            promoted, reason = False, f"smoke load failed: {smoke}"
        else:
            promoted = True
            prev = f"{champ['version_id']} ({champ['metrics'].get(PRIMARY_METRIC, 0.0):.4f})" if champ else "none"
            reason = f"{best['version_id']} {PRIMARY_METRIC}={b:.4f} beats champion {prev} + margin {margin}"
    if promoted:
        reg.set_champion(FAMILY, best["version_id"], reason)
    reg.record_decision(
        FAMILY, run_id, best["version_id"], champ["version_id"] if champ else None, promoted, reason, details
    )
    log.info("gate: %s", reason)
    current = reg.champion(FAMILY)
    return {"promoted": promoted, "reason": reason, "champion": current["version_id"] if current else None}
