"""The functions Airflow tasks call, one per task. DAG files only wire these together.

Each function is idempotent for a given ``run_id``: re-running a DAG run gives the same rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml import config
from ml.defaults import DEFAULT_CANDIDATES, FAMILY, PRIMARY_METRIC  # noqa: F401 (re-exported)
from ml.warehouse import Warehouse

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------- ingest
def ingest_landing(
    paths: list[str] | None = None, threshold: float | None = None, warehouse: str | None = None
) -> list[dict[str, Any]]:
    """Ingest landing files/folders (default: the landing folder).

    A blocked batch or a bad file fails the task *without retries* (retrying cannot fix data).
    """
    from dataclasses import replace

    from ml.config import IngestSettings
    from ml.ingest.landing import BatchBlocked, LandingFileError, ingest_paths
    from ml.orchestration.errors import fail_without_retry

    settings = IngestSettings()
    if threshold is not None:
        settings = replace(settings, quarantine_threshold=float(threshold))
    targets = [Path(p) for p in (paths or [str(config.landing_dir())])]
    try:
        reports = ingest_paths(targets, Warehouse.from_env(warehouse), settings)
    except (BatchBlocked, LandingFileError) as exc:
        fail_without_retry(str(exc))
    out = [r.accounting() for r in reports]
    for line in out:
        log.info("ingest %s", json.dumps(line))
    return out


# -------------------------------------------------------------------------------- features
def build_features(warehouse: str | None = None, select: str | None = None) -> dict[str, Any]:
    """``dbt build`` of the whole project (direct path; the DAG uses cosmos)."""
    from ml.features.dbt import build

    res = build(Warehouse.from_env(warehouse), select=select)
    return {"seconds": round(res.seconds, 2)}


def check_marts(warehouse: str | None = None) -> dict[str, int]:
    """Row counts of the marts the models read; fails if any is empty."""
    wh = Warehouse.from_env(warehouse)
    counts = {}
    for t in ("interaction_events", "interactions", "item_features"):
        counts[t] = int(wh.query(f"select count(*) as n from marts.{t}")["n"].iloc[0])
    empty = [t for t, n in counts.items() if n == 0]
    if empty:
        from ml.orchestration.errors import fail_without_retry

        fail_without_retry(f"empty marts: {empty}")
    return counts


# -------------------------------------------------------------------------------- training
def load_interaction_events(wh: Warehouse) -> pd.DataFrame:
    df = wh.query("select user_id, item_id, event_type, event_at, weight from marts.interaction_events")
    df["event_at"] = pd.to_datetime(df["event_at"])
    return df


def decayed(df: pd.DataFrame, as_of: pd.Timestamp, half_life_days: float) -> pd.DataFrame:
    """Multiply each event's weight by 0.5^(age_days / half_life) and aggregate per user x item."""
    age = (as_of - df["event_at"]).dt.total_seconds() / 86400.0
    d = df.assign(weight=df["weight"] * np.power(0.5, age.clip(lower=0) / half_life_days))
    return d.groupby(["user_id", "item_id"], as_index=False)["weight"].sum()


def snapshot_id(df: pd.DataFrame, cutoff: pd.Timestamp) -> str:
    h = hashlib.sha1(f"{len(df)}|{df['event_at'].max()}|{df['weight'].sum():.6f}".encode()).hexdigest()[:8]
    return f"snap-{cutoff:%Y%m%dT%H%M}-{h}"


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
    code = (
        f"import json,sys; from ml.tasks import _smoke_in_process as f; print(json.dumps(f({version_id!r}, {n_users})))"
    )
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


# ------------------------------------------------------------------------------ publishing
def score_users(
    wh: Warehouse, k: int = 10, exclude_event_types: tuple[str, ...] = ("purchase",)
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Top-k for every active user with the champion, popularity filling any gaps."""
    from ml.recommend import InteractionData, Popularity
    from ml.registry import Registry, load_artifact

    champ = Registry(wh).champion(FAMILY)
    if champ is None:
        raise RuntimeError("no champion model: run retrain_models first")
    art = load_artifact(champ["artifact_path"])
    model = art["model"]
    events = load_interaction_events(wh)
    as_of = events["event_at"].max()
    agg = decayed(events, as_of, art.get("half_life_days", 14.0))
    users = np.sort(events["user_id"].unique())
    data = InteractionData.from_frame(agg, user_ids=users, item_ids=art["item_ids"])
    bought = events[events["event_type"].isin(exclude_event_types)].assign(weight=1.0)
    excl = InteractionData.from_frame(bought, user_ids=users, item_ids=art["item_ids"]).matrix
    idx, sc = model.recommend(data.matrix, k=k, exclude=excl)
    reasons = model.explain(data.matrix, np.arange(len(users)), idx)
    # fill empty slots from popularity, never repeating or recommending excluded items
    pop = Popularity().fit(data.matrix)
    pop_order = np.argsort(-pop.popularity_, kind="stable")
    need = np.flatnonzero((idx < 0).any(axis=1))
    for u in need.tolist():
        have = set(idx[u][idx[u] >= 0].tolist()) | set(excl[u].indices.tolist())
        fill = [i for i in pop_order if i not in have][: int((idx[u] < 0).sum())]
        slots = np.flatnonzero(idx[u] < 0)[: len(fill)]
        floor = np.nanmin(sc[u][np.isfinite(sc[u])]) if np.isfinite(sc[u]).any() else 0.0
        for s, i in zip(slots, fill, strict=False):
            idx[u, s] = i
            sc[u, s] = floor - 1.0 - (s * 1e-3)
            reasons[u][s] = {"kind": "popular"}
    items = wh.query("select item_id, title, category_l3, category_path from marts.item_features")
    title = dict(zip(items["item_id"], items["title"], strict=True))
    cat = dict(zip(items["item_id"], items["category_path"], strict=True))
    item_ids = np.asarray(art["item_ids"])
    rows = []
    for u, uid in enumerate(users):
        for r in range(k):
            i = idx[u, r]
            if i < 0:
                continue
            iid = item_ids[i]
            rs = reasons[u][r]
            if rs.get("kind") == "similar_item":
                src = item_ids[rs["item"]]
                text, tag = f"similar to '{title.get(src, src)}' you interacted with", f"item:{src}"
            else:
                text, tag = f"popular in {cat.get(iid, 'the shop')}", "popular"
            rows.append((uid, r + 1, iid, float(sc[u, r]), text, tag))
    df = pd.DataFrame(rows, columns=["user_id", "rank", "item_id", "score", "reason", "reason_tag"])
    df["model_version"] = champ["version_id"]
    return df, champ


def publish_recommendations(
    run_id: str = "manual",
    k: int = 10,
    keep_versions: int = 3,
    exclude_event_types: list[str] | None = None,
    warehouse: str | None = None,
) -> dict[str, Any]:
    """Score all active users with the champion and publish atomically as a new version."""
    from ml.publish import publish_table
    from ml.quality.prepublish import check_recommendations

    wh = Warehouse.from_env(warehouse)
    excl = tuple(exclude_event_types or ["purchase"])
    df, champ = score_users(wh, k=k, exclude_event_types=excl)
    df["policy"] = "greedy"
    df["propensity"] = 1.0
    df["is_exploration"] = False
    df["recommendation_id"] = [hashlib.sha1(f"{run_id}|{u}".encode()).hexdigest()[:16] for u in df["user_id"]]
    df["run_id"] = run_id
    check_recommendations(df, wh, k=k, exclude_event_types=excl)
    res = publish_table(df, "recommendations", run_id, wh, keep=keep_versions, model_version=champ["version_id"])
    return {
        "table": res.table,
        "view": res.view,
        "version": res.version,
        "rows": res.rows,
        "users": int(df["user_id"].nunique()),
        "model_version": champ["version_id"],
        "dropped_versions": res.dropped_versions,
    }
