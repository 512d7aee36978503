"""Task functions of the publish_recommendations DAG."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import numpy as np
import pandas as pd

from ml.defaults import DEFAULT_CANDIDATES, FAMILY, PRIMARY_METRIC  # noqa: F401
from ml.features.interactions import decayed, load_interaction_events, snapshot_id  # noqa: F401
from ml.warehouse import Warehouse

log = logging.getLogger(__name__)


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
