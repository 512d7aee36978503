"""Task functions of the publish_recommendations DAG.

Publishing = the champion recommender proposes candidates (its top ``candidates_per_user``
items per user, with explanations), the serving policy (the registry's policy champion, the
``policy`` argument, or ``greedy``) turns them into a slate of k slots per user, and the slates
are published atomically with, per shown item, its interest tag, policy, propensity and
exploration flag. Every slate and the context the policy saw are also appended to
``ml.logged_slates`` / ``ml.slate_contexts``, which the feedback mart and OPE read.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import numpy as np
import pandas as pd

from ml.defaults import DEFAULT_CANDIDATES, FAMILY, PRIMARY_METRIC  # noqa: F401
from ml.explore.defaults import DEFAULT_POLICY, DEFAULT_PROPENSITY_DRAWS, POLICY_FAMILY
from ml.features.interactions import decayed, load_interaction_events, snapshot_id  # noqa: F401
from ml.warehouse import Warehouse

log = logging.getLogger(__name__)

PUBLISHED_COLUMNS = [
    "user_id",
    "rank",
    "item_id",
    "score",
    "reason",
    "reason_tag",
    "model_version",
    "policy",
    "policy_version",
    "propensity",
    "propensity_se",
    "is_exploration",
    "recommendation_id",
    "run_id",
]


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


def resolve_policy(
    wh: Warehouse,
    policy: str | None = None,
    policy_params: dict[str, Any] | None = None,
    exploration_budget: dict[str, float] | None = None,
    min_sessions: int | None = None,
) -> tuple[Any, str]:
    """(policy object, policy version) that serves this run.

    ``policy`` names one explicitly (version ``<name>-adhoc-<hash of params>``); otherwise the
    registry's ``policy`` champion serves, or ``greedy`` when there is none. The exploration
    budget and session cap, when given, override the slot allocator's."""
    from ml.explore.policies import make_policy
    from ml.registry import Registry

    if policy:
        name, params = policy, dict(policy_params or {})
        digest = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]
        version = f"{name}-adhoc-{digest}"
    else:
        champ = Registry(wh).champion(POLICY_FAMILY)
        if champ is not None:
            name, params, version = champ["model_name"], dict(champ["params"]), champ["version_id"]
        else:
            name, params, version = DEFAULT_POLICY, {}, f"{DEFAULT_POLICY}-default"
    if name == "slot_allocator":
        if exploration_budget:
            params["budget"] = {str(k): float(v) for k, v in exploration_budget.items()}
        if min_sessions is not None:
            params["min_sessions"] = int(min_sessions)
    return make_policy(name, **params), version


def publish_recommendations(
    run_id: str = "manual",
    k: int = 10,
    keep_versions: int = 3,
    exclude_event_types: list[str] | None = None,
    warehouse: str | None = None,
    policy: str | None = None,
    policy_params: dict[str, Any] | None = None,
    exploration_budget: dict[str, float] | None = None,
    min_sessions: int | None = None,
    propensity_draws: int = DEFAULT_PROPENSITY_DRAWS,
    candidates_per_user: int = 50,
) -> dict[str, Any]:
    """Apply the serving policy to the champion's candidates and publish atomically as a new version."""
    from ml.explore import store
    from ml.explore.candidates import CandidateSettings, build_contexts
    from ml.explore.slate import build_slates
    from ml.publish import publish_table
    from ml.quality.prepublish import check_recommendations

    wh = Warehouse.from_env(warehouse)
    excl = tuple(exclude_event_types or ["purchase"])
    champ_df, champ = score_users(wh, k=max(candidates_per_user, k), exclude_event_types=excl)
    pol, pol_version = resolve_policy(wh, policy, policy_params, exploration_budget, min_sessions)
    feedback = store.load_feedback(wh)
    pol.fit(feedback)
    inputs = store.read_candidate_inputs(wh, champ_df, excl, feedback)
    users = sorted(champ_df["user_id"].unique())
    settings = CandidateSettings(items_per_tag=k, slate_size=k)
    contexts = build_contexts(inputs, users, settings)
    day = pd.Timestamp(inputs.as_of).strftime("%Y-%m-%d")
    df = build_slates(pol, contexts, k, day, run_id, n_draws=propensity_draws, labels=store.read_labels(wh))
    df["policy_version"] = pol_version
    df["model_version"] = champ["version_id"]
    df["run_id"] = run_id
    check_recommendations(df, wh, k=k, exclude_event_types=excl)
    res = publish_table(
        df[PUBLISHED_COLUMNS],
        "recommendations",
        run_id,
        wh,
        keep=keep_versions,
        model_version=champ["version_id"],
        policy_version=pol_version,
        meta={"policy": pol.name, "params": pol.get_params(), "propensity_draws": propensity_draws, "day": day},
    )
    with wh.connect() as con:
        wh.begin(con)
        store.write_log(wh, con, run_id, df, contexts, inputs.as_of)
        wh.commit(con)
    return {
        "table": res.table,
        "view": res.view,
        "version": res.version,
        "rows": res.rows,
        "users": int(df["user_id"].nunique()),
        "model_version": champ["version_id"],
        "policy": pol.name,
        "policy_version": pol_version,
        "exploration_share": round(float(df["is_exploration"].mean()), 4) if len(df) else 0.0,
        "mean_propensity": round(float(df["propensity"].mean()), 4) if len(df) else 0.0,
        "dropped_versions": res.dropped_versions,
    }
