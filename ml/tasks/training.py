"""Task functions of the retrain_models DAG: train candidates, evaluate, gate.

``train_candidate`` evaluates one model config on a time-based holdout (the last
``holdout_days`` of interactions), refits it on all data, saves the artifact and registers the
version. ``evaluate_and_gate`` picks the best candidate on the primary metric and promotes it
only when :class:`ml.registry.gate.GatePolicy` agrees and the artifact passes a smoke load in a
fresh Python process; otherwise the champion stays and the reason is logged and recorded.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ml import config
from ml.defaults import DEFAULT_CANDIDATES, FAMILY, PRIMARY_METRIC  # noqa: F401
from ml.features.interactions import decayed, load_interaction_events, snapshot_id
from ml.orchestration import children
from ml.warehouse import Warehouse

log = logging.getLogger(__name__)

COLD_MAX_EVENTS = 2  # users with at most this many training interactions count as new/cold


def training_snapshot_id(wh: Warehouse, events: pd.DataFrame, as_of: pd.Timestamp) -> str:
    """The id of the training snapshot: the newest row of ``marts.training_snapshots`` when
    that mart exists and has a ``snapshot_id`` column, otherwise a hash of the events."""
    try:
        with wh.connect(read_only=True) as con:
            cols = wh.table_columns(con, "marts", "training_snapshots")
            if "snapshot_id" in cols:
                order = next((c for c in ("created_at", "built_at", "as_of", "snapshot_at") if c in cols), None)
                q = "select snapshot_id from marts.training_snapshots"
                q += f" order by {order} desc nulls last limit 1" if order else " limit 1"
                df = wh.query(q, None, con)
                if len(df) and df["snapshot_id"].iloc[0]:
                    return str(df["snapshot_id"].iloc[0])
    except Exception as exc:  # the mart is optional: any read problem falls back to the hash
        log.info("marts.training_snapshots unavailable (%s); using the event hash", exc)
    return snapshot_id(events, as_of)


def fit_context(wh: Warehouse, events: pd.DataFrame, data: Any) -> dict[str, Any]:
    """Fit context for ``data`` (an InteractionData) from the warehouse, read defensively:
    events (row, col, ts); item features from marts.item_features categories/brand plus
    ml.item_tags when present; item categories (leaf); user profile features (country) from
    marts.user_features or raw.users; category transitions from ml.category_transitions when
    present; each item's mean review sentiment (ml.review_sentiment) over the reviews written up to
    the last training event, so the holdout's reviews never leak into the fit."""
    from ml.recommend.features import events_context, item_category_codes, item_feature_matrix, user_feature_matrix

    ctx: dict[str, Any] = {"events": events_context(events, data.user_index, data.item_index, "event_at")}
    with wh.connect(read_only=True) as con:
        item_cols = wh.table_columns(con, "marts", "item_features")
        wanted = [
            c
            for c in ("item_id", "category_l1", "category_l2", "category_l3", "category_path", "brand")
            if c in item_cols
        ]
        items = wh.query(f"select {', '.join(wanted)} from marts.item_features", None, con) if wanted else None
        tags = None
        if {"item_id", "tag"} <= set(wh.table_columns(con, "ml", "item_tags")):
            tags = wh.query(
                "select item_id, tag, max(score) as score from ml.item_tags group by item_id, tag", None, con
            )
        users = None  # profile only: behavioural columns would leak the holdout period into the features
        for schema, table in (("marts", "user_features"), ("raw", "users")):
            if {"user_id", "country"} <= set(wh.table_columns(con, schema, table)):
                users = wh.query(f"select user_id, country from {schema}.{table}", None, con)
                break
        reviews = None
        if {"item_id", "sentiment", "reviewed_at"} <= set(wh.table_columns(con, "ml", "review_sentiment")) and len(
            events
        ):
            reviews = wh.query(
                "select item_id, avg(sentiment) as sentiment from ml.review_sentiment where reviewed_at <= ? "
                "group by item_id",
                [pd.Timestamp(events["event_at"].max()).to_pydatetime()],
                con,
            )
        trans = None
        if {"from_category", "to_category", "probability"} <= set(wh.table_columns(con, "ml", "category_transitions")):
            trans = wh.query("select from_category, to_category, probability from ml.category_transitions", None, con)
    if items is not None and len(items):
        cat_cols = [c for c in ("category_l1", "category_l2", "category_l3", "brand") if c in items]
        F, names = item_feature_matrix(items, data.item_ids, cat_cols, weights=tags)
        ctx["item_features"], ctx["feature_names"] = F, names
        leaf = "category_l3" if "category_l3" in items else "category_path" if "category_path" in items else None
        if leaf:
            codes = item_category_codes(items, data.item_ids, leaf)
            ctx["item_categories"] = codes
            if trans is not None and len(trans):
                ctx["category_transitions"] = _transitions_matrix(trans, items, data.item_ids, leaf, codes)
    if reviews is not None and len(reviews):
        ctx["item_sentiment"] = (
            reviews.set_index("item_id")["sentiment"].reindex(data.item_ids).fillna(0.0).to_numpy(np.float32)
        )
    if users is not None and len(users):
        numeric = [
            c
            for c in users.columns
            if c != "user_id" and pd.api.types.is_numeric_dtype(users[c]) and not c.endswith("_id")
        ]
        categorical = [c for c in ("country", "segment") if c in users.columns]
        ctx["user_features"] = user_feature_matrix(users, data.user_ids, numeric, categorical)
    return ctx


def _transitions_matrix(
    trans: pd.DataFrame, items: pd.DataFrame, item_ids: np.ndarray, leaf: str, codes: np.ndarray
) -> np.ndarray | None:
    """ml.category_transitions as an (n_cat, n_cat) matrix on our category codes, or None when
    its category names do not match ours (then the re-ranker learns transitions itself)."""
    aligned = items.drop_duplicates("item_id").set_index(items.drop_duplicates("item_id")["item_id"].astype(str))
    names = aligned.reindex(pd.Index(np.asarray(item_ids).astype(str)))[leaf].astype("string")
    code_of = {str(n): int(c) for n, c in zip(names, codes, strict=True) if c >= 0 and pd.notna(n)}
    n_cat = int(codes.max()) + 1 if len(codes) else 0
    f = trans["from_category"].astype(str).map(code_of)
    t = trans["to_category"].astype(str).map(code_of)
    ok = f.notna() & t.notna()
    if n_cat == 0 or ok.mean() < 0.5:
        return None
    M = np.zeros((n_cat, n_cat))
    M[f[ok].astype(int).to_numpy(), t[ok].astype(int).to_numpy()] = trans.loc[ok, "probability"].to_numpy(float)
    return M


def _holdout_metrics(
    est: Any, X: sp.csr_matrix, test: pd.DataFrame, data: Any, train_counts: pd.Series, k: int
) -> dict[str, float]:
    """Metrics on the holdout: warm users (new items after the cut-off) for the primary metric
    and guards, and new/cold users (<= COLD_MAX_EVENTS training interactions) for their hit rate."""
    from ml.evaluate import EvalContext, evaluate
    from ml.evaluate.metrics import hit_rate_at_k, novelty_at_k

    te = test[test["item_id"].isin(data.item_index)]
    te_known = te[te["user_id"].isin(data.user_index)]
    rows = te_known["user_id"].map(data.user_index).to_numpy()
    cols = te_known["item_id"].map(data.item_index).to_numpy()
    seen = X[rows, cols].A1 != 0 if len(rows) else np.zeros(0, bool)
    rel: dict[int, set[int]] = {}
    for r, c in zip(rows[~seen], cols[~seen], strict=True):
        rel.setdefault(int(r), set()).add(int(c))
    eval_rows = np.array(sorted(rel), dtype=np.int64)
    metrics: dict[str, float] = {}
    pop = np.asarray((X > 0).sum(axis=0)).ravel() / max(X.shape[0], 1)
    ctx = EvalContext(n_items=max(X.shape[1], 1), item_popularity=pop)
    if len(eval_rows):
        recs, _ = est.recommend(X, eval_rows, k=k)
        metrics = evaluate(recs, [rel[int(r)] for r in eval_rows], k, ctx)
        metrics[f"novelty@{k}"] = novelty_at_k(recs, [], k, ctx)
    metrics["eval_users"] = float(len(eval_rows))
    # new/cold users: brand-new users get an empty row appended to the matrix
    counts = te["user_id"].map(train_counts).fillna(0)
    cold = te[counts.to_numpy() <= COLD_MAX_EVENTS]
    if len(cold):
        cold_users = np.sort(cold["user_id"].unique())
        known = np.array([u in data.user_index for u in cold_users])
        new_ids = cold_users[~known]
        Xc = sp.vstack([X, sp.csr_matrix((len(new_ids), X.shape[1]), dtype=X.dtype)]).tocsr()
        index = {**data.user_index, **{u: X.shape[0] + i for i, u in enumerate(new_ids)}}
        crow = np.array([index[u] for u in cold_users], dtype=np.int64)
        by_user = cold.groupby("user_id")["item_id"].agg(lambda s: {data.item_index[i] for i in s})
        relevant = [by_user[u] - set(Xc[index[u]].indices.tolist()) for u in cold_users]
        recs, _ = est.recommend(Xc, crow, k=k)
        metrics[f"new_user_hit_rate@{k}"] = hit_rate_at_k(recs, relevant, k, ctx)
        metrics["new_users"] = float(sum(1 for r in relevant if r))
    return metrics


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
    from ml.evaluate import temporal_split
    from ml.recommend import InteractionData, make_model
    from ml.registry import ModelVersion, Registry, save_artifact

    params = dict(params or {})
    wh = Warehouse.from_env(warehouse)
    events = load_interaction_events(wh)
    if events.empty:
        raise ValueError("marts.interaction_events is empty: ingest data and build features first")
    train, test, cutoff = temporal_split(events, holdout_days)
    if train.empty:
        raise ValueError(f"no interactions before the holdout cut-off {cutoff}: lower holdout_days ({holdout_days})")
    data = InteractionData.from_frame(decayed(train, cutoff, half_life_days))
    t0 = time.perf_counter()
    est = make_model(model, **params).fit(data.matrix, **fit_context(wh, train, data))
    fit_seconds = time.perf_counter() - t0
    metrics = _holdout_metrics(est, data.matrix, test, data, train.groupby("user_id").size(), k)
    metrics["fit_seconds"] = round(fit_seconds, 3)
    # refit on everything for serving
    as_of = events["event_at"].max()
    full = InteractionData.from_frame(decayed(events, as_of, half_life_days))
    t0 = time.perf_counter()
    final = make_model(model, **params).fit(full.matrix, **fit_context(wh, events, full))
    train_seconds = time.perf_counter() - t0
    snap = training_snapshot_id(wh, events, as_of)
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
    return {
        "version_id": mv.version_id,
        "model": model,
        "params": json.loads(json.dumps(final.get_params(), default=str)),
        "metrics": metrics,
        "snapshot_id": snap,
    }


def smoke_load(version_id: str, n_users: int = 50, warehouse: str | None = None) -> dict[str, Any]:
    """Reload a version's artifact in a fresh Python process and score a sample of users."""
    code = (
        "import json; from ml.tasks.training import _smoke_in_process as f; "
        f"print(json.dumps(f({version_id!r}, {int(n_users)})))"
    )
    env = {
        **os.environ,
        # the warehouse this process resolved (an Airflow Connection included): the child is
        # not an Airflow task and reads only this variable
        "INTERESTFLOW_WAREHOUSE": Warehouse.from_env(warehouse).url,
        "PYTHONPATH": str(config.PROJECT_ROOT),
    }
    try:
        proc = children.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": "smoke load timed out after 600 s"}
    if proc.returncode != 0:
        return {"ok": False, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    return {"ok": True, **json.loads(proc.stdout.strip().splitlines()[-1])}


def _smoke_in_process(version_id: str, n_users: int) -> dict[str, Any]:
    """Load the artifact, rebuild the matrix of a sample of real users from the warehouse
    (as publishing does), recommend and explain; report whether everything is sane."""
    from ml.recommend import InteractionData
    from ml.registry import Registry, load_artifact

    wh = Warehouse.from_env()
    mv = Registry(wh).get(version_id)
    art = load_artifact(mv["artifact_path"])
    model = art["model"]
    events = load_interaction_events(wh)
    users = np.sort(events["user_id"].unique())
    rng = np.random.default_rng(0)
    sample = rng.choice(users, size=min(n_users, len(users)), replace=False) if len(users) else users
    agg = decayed(events[events["user_id"].isin(sample)], art["as_of"], art.get("half_life_days", 14.0))
    data = InteractionData.from_frame(agg, user_ids=np.sort(sample), item_ids=art["item_ids"])
    X = sp.vstack([data.matrix, sp.csr_matrix((1, data.matrix.shape[1]), dtype=np.float32)]).tocsr()  # + a new user
    idx, sc = model.recommend(X, k=10)
    reasons = model.explain(X, np.arange(X.shape[0]), idx)
    valid = idx >= 0
    return {
        "users_scored": int(X.shape[0]),
        "finite": bool(np.isfinite(sc[valid]).all()),
        "full_lists": bool(valid.all()),
        "explained": bool(all(len(r) == idx.shape[1] for r in reasons)),
    }


def evaluate_and_gate(
    candidates: list[dict[str, Any]],
    run_id: str = "manual",
    margin: float = 0.0,
    min_coverage: float = 0.0,
    max_coverage_drop: float | None = None,
    min_new_user_hit_rate: float = 0.0,
    warehouse: str | None = None,
) -> dict[str, Any]:
    """Pick the best candidate on the primary metric, then promote it only if the gate policy
    passes (margin over the champion, coverage and new-user guards) and its artifact passes a
    smoke load in a fresh process. Otherwise the champion stays; the reason is logged and
    recorded in ``registry.gate_decisions``."""
    from ml.registry import Registry
    from ml.registry.gate import GatePolicy

    policy = GatePolicy(
        primary=PRIMARY_METRIC,
        margin=margin,
        min_coverage=min_coverage,
        max_coverage_drop=max_coverage_drop,
        min_new_user_hit_rate=min_new_user_hit_rate,
    )
    reg = Registry(Warehouse.from_env(warehouse))
    ok = [c for c in candidates if c and PRIMARY_METRIC in c.get("metrics", {})]
    if not ok:
        reason = "no candidate produced holdout metrics; champion unchanged"
        reg.record_decision(FAMILY, run_id, None, None, False, reason, {})
        log.warning("gate: %s", reason)
        return {"promoted": False, "reason": reason, "champion": None}
    best = max(ok, key=lambda c: c["metrics"][PRIMARY_METRIC])
    champ = reg.champion(FAMILY)
    champ_metrics = _champion_metrics(champ, ok)
    details: dict[str, Any] = {
        "candidates": {c["version_id"]: c["metrics"] for c in ok},
        "policy": policy.__dict__,
        "champion_metrics": champ_metrics,
    }
    if champ and champ["version_id"] == best["version_id"]:
        promoted, reason = False, f"{best['version_id']} is already champion"
    else:
        decision = policy.decide(best["metrics"], champ_metrics)
        details["checks"] = decision.checks
        promoted, reason = decision.promote, decision.reason
        if promoted:
            smoke = smoke_load(best["version_id"], warehouse=warehouse)
            details["smoke_load"] = smoke
            sane = smoke.get("ok") and smoke.get("finite") and smoke.get("explained")
            if not sane:
                promoted, reason = False, f"smoke load failed: {smoke}"
            else:
                reason = f"promoted {best['version_id']}: {reason}; smoke load ok ({smoke['users_scored']} users)"
        if not promoted:
            keep = champ["version_id"] if champ else "none"
            reason = f"challenger {best['version_id']} not promoted, champion {keep} stays: {reason}"
    if promoted:
        reg.set_champion(FAMILY, best["version_id"], reason)
    reg.record_decision(
        FAMILY, run_id, best["version_id"], champ["version_id"] if champ else None, promoted, reason, details
    )
    (log.info if promoted else log.warning)("gate: %s", reason)
    current = reg.champion(FAMILY)
    return {"promoted": promoted, "reason": reason, "champion": current["version_id"] if current else None}


def _champion_metrics(champ: dict[str, Any] | None, candidates: list[dict[str, Any]]) -> dict[str, float] | None:
    """The champion's metrics on *this* run's holdout when this run retrained its config (same
    model and params), else the metrics recorded when it was registered."""
    if champ is None:
        return None
    for c in candidates:
        if c.get("model") == champ["model_name"] and c.get("params") == _config_params(champ["params"]):  # same config
            return dict(c["metrics"])
    return dict(champ["metrics"])


def _config_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k not in ("half_life_days", "holdout_days")}
