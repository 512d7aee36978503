"""Task functions of the publish_recommendations DAG.

Publishing = the champion recommender proposes candidates (its top ``candidates_per_user``
items per user, with explanations), the serving policy (the registry's policy champion, the
``policy`` argument, or ``greedy``) turns them into a slate of k slots per user, and the slates
are published atomically with, per shown item, its interest tag, policy, propensity and
exploration flag. Every slate and the context the policy saw are also appended to
``ml.logged_slates`` / ``ml.slate_contexts``, which the feedback mart and OPE read.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml.defaults import DEFAULT_CANDIDATES, FAMILY, PRIMARY_METRIC  # noqa: F401
from ml.explore.candidates import ChampionCodes
from ml.explore.defaults import DEFAULT_POLICY, DEFAULT_PROPENSITY_DRAWS, POLICY_FAMILY
from ml.features.interactions import load_decayed_interactions, snapshot_id  # noqa: F401
from ml.marketing.serving import MarketingArgs, MarketingInputs, apply_marketing, marketing_inputs
from ml.recommend.explain import ChampionReasons
from ml.threads import in_background
from ml.timing import Timings, stage
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
    "campaign",
    "new_item",
    "cold_start",
]


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a block that allocates millions of small
    objects without reference cycles (per-user contexts and rows): the collector would rescan
    them again and again as they pile up, about a quarter of the marketing step's time on the
    large shop. Reference counting still frees everything; the collector resumes afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def champion_row(wh: Warehouse) -> dict[str, Any]:
    """The registry row of the champion recommender; an error when none was promoted yet."""
    from ml.registry import Registry

    champ = Registry(wh).champion(FAMILY)
    if champ is None:
        raise RuntimeError("no champion model: run retrain_models first")
    return champ


def score_users(
    wh: Warehouse,
    k: int = 10,
    exclude_event_types: tuple[str, ...] = ("purchase",),
    defer_reasons: bool = False,
    champion: dict[str, Any] | None = None,
    alongside: Callable[[], Any] | None = None,
) -> ChampionScores:
    """Top-k for every active user with the champion (``champion``: its registry row when the
    caller has read it already), popularity filling any gaps.

    ``alongside`` runs on a second thread while the interactions load and the champion's
    scoring kernel runs (compiled code that releases the GIL, so on two cores the two overlap
    almost fully); that thread then takes the kernel's remaining batches too (for models whose
    scoring is thread-safe). Its result is the result's ``alongside`` and its exception is raised
    here. It should open read-only connections only.

    With ``defer_reasons`` the rows' ``reason``/``reason_tag`` are left empty and the result's
    ``reasons`` is a future of the :class:`ChampionReasons` that explains any (user, item) rows
    later: publishing explains only the ~k shown rows per user, not every candidate."""
    from ml.recommend import InteractionData
    from ml.registry import load_artifact

    champ = champion if champion is not None else champion_row(wh)
    art = load_artifact(champ["artifact_path"])
    model = art["model"]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="score-alongside") as pool:
        # ``alongside`` starts first (it overlaps the load and the kernel); the worker then
        # shares the kernel's batches with this thread
        ahead = pool.submit(alongside) if alongside is not None else None
        # decayed weights aggregated by the warehouse (the same as ``decayed`` over every event)
        inter = load_decayed_interactions(wh, art.get("half_life_days", 14.0), tuple(exclude_event_types))
        users = inter.users
        data = InteractionData.from_frame(inter.frame, user_ids=users, item_ids=art["item_ids"])
        excl = InteractionData.from_frame(inter.excluded, user_ids=users, item_ids=art["item_ids"]).matrix
        excluded_pairs = inter.excluded
        del inter
        idx, sc = model.recommend(data.matrix, k=k, exclude=excl, helpers=pool)
        side = ahead.result() if ahead is not None else None
    filled = _fill_from_popularity(idx, sc, data.matrix, excl)
    items = wh.query("select item_id, title, category_l3, category_path from marts.item_features")
    item_ids = np.asarray(art["item_ids"])
    u_ix, r_ix = np.nonzero(idx >= 0)  # user by user, rank by rank
    picked = idx[u_ix, r_ix]
    reason_args = (model, data.matrix, np.asarray(users), item_ids, items, idx, filled)
    # the id columns stay Python objects: turning 6M ids into Arrow strings took ~1.2 s of
    # the main thread on the large shop, and the rows only feed the contexts (by code)
    df = pd.DataFrame(
        {
            "user_id": pd.Series(np.asarray(users, dtype=object)[u_ix], dtype=object, copy=False),
            "rank": r_ix + 1,
            "item_id": pd.Series(np.asarray(item_ids, dtype=object)[picked], dtype=object, copy=False),
            "score": sc[u_ix, r_ix].astype(np.float64),
        }
    )
    reasons = None
    if defer_reasons:
        df["reason"] = pd.Series(np.full(len(df), None, dtype=object), dtype=object, copy=False)
        df["reason_tag"] = pd.Series(np.full(len(df), None, dtype=object), dtype=object, copy=False)
        # (built on a second thread: publishing needs them only once the slates are drawn)
        reasons = in_background(ChampionReasons, *reason_args)
    else:
        df["reason"], df["reason_tag"] = ChampionReasons(*reason_args).for_slots(u_ix, picked)
    df["model_version"] = champ["version_id"]
    # the distinct users of the rows, sorted (found from the row codes, not the 6M-row column)
    user_ids = np.asarray(users, dtype=object)
    present = np.flatnonzero(np.bincount(u_ix, minlength=len(users)))
    return ChampionScores(
        rows=df,
        version_id=str(champ["version_id"]),
        users=sorted(user_ids[present].tolist()),
        codes=ChampionCodes(u_ix, picked, user_ids, item_ids),
        excluded=excluded_pairs,  # (the same pairs as the matrix ``excl``)
        reasons=reasons,
        alongside=side,
    )


def _fill_from_popularity(idx: np.ndarray, sc: np.ndarray, X: Any, excl: Any) -> np.ndarray:
    """Fill the empty slots (-1) of the candidate matrix ``idx`` (users, k) with popular items
    (by interactions in ``X``), never repeating or recommending excluded items, scored below
    the user's lowest score; in place. Returns the filled slots (explained as popular)."""
    from ml.recommend import Popularity

    pop_order = np.argsort(-Popularity().fit(X).popularity_, kind="stable")
    filled = np.zeros(idx.shape, dtype=bool)
    for u in np.flatnonzero((idx < 0).any(axis=1)).tolist():
        have = set(idx[u][idx[u] >= 0].tolist()) | set(excl[u].indices.tolist())
        fill = [i for i in pop_order if i not in have][: int((idx[u] < 0).sum())]
        slots = np.flatnonzero(idx[u] < 0)[: len(fill)]
        floor = np.nanmin(sc[u][np.isfinite(sc[u])]) if np.isfinite(sc[u]).any() else 0.0
        for s, i in zip(slots, fill, strict=False):
            idx[u, s] = i
            sc[u, s] = floor - 1.0 - (s * 1e-3)
            filled[u, s] = True
    return filled


@dataclass
class ChampionScores:
    """What :func:`score_users` returns: the candidate rows (user_id, rank, item_id, score,
    reason, reason_tag, model_version), the champion's version, the rows' distinct users
    (sorted), the rows as positions into (user ids, item ids), the excluded (user_id, item_id)
    pairs, the deferred :class:`ChampionReasons` (a future; None when the rows carry their
    reasons) and the result of ``alongside`` (None without one)."""

    rows: pd.DataFrame
    version_id: str
    users: list[str]
    codes: ChampionCodes
    excluded: pd.DataFrame
    reasons: Future[ChampionReasons] | None = None
    alongside: Any = None


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


def _serving_inputs(wh: Warehouse, pol: Any, excl: tuple[str, ...]) -> tuple[Any, dict[str, str], list[str]]:
    """Fit the serving policy on the logged feedback and return (the champion-independent
    candidate inputs, tag labels, every known user): everything publishing reads that the
    champion's candidates do not change. Opens read-only connections only. Also imports the
    pre-publish gate's library, which the gate would otherwise import on the main thread after
    scoring."""
    from ml.explore import store
    from ml.explore.feedback import STATS_COLUMNS
    from ml.quality.prepublish import prepare

    # only the columns the policy's fit and the feedback statistics read (5 of 18 for most
    # policies: the rest is most of the bytes)
    feedback = store.load_feedback(wh, columns=(*STATS_COLUMNS, *pol.feedback_columns))
    pol.fit(feedback)
    arm_inputs = store.read_arm_inputs(wh, excl, feedback, read_excluded=False)  # scoring reads them
    labels = store.read_labels(wh)
    known_users = store.read_known_users(wh)
    prepare()
    return arm_inputs, labels, known_users


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
    campaigns: bool = True,
    campaign_at: str | None = None,
    campaign_holdout_share: float | None = None,
    new_item_budget: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Apply the serving policy to the champion's candidates, then the marketing layer (active
    campaign windows of ``ml/marketing/campaigns/``, the new-item exposure budget), and publish
    atomically as a new version.

    ``campaign_at`` is the campaign clock (default: the newest event, the same day the slates
    are seeded with); ``campaign_holdout_share`` overrides each campaign's holdout size;
    ``new_item_budget`` overrides ``ml.marketing.defaults.DEFAULT_NEW_ITEM_BUDGET`` key by key
    (``slot_probability: 0`` turns discovery off).

    The result's ``stages`` holds each stage's seconds (see :func:`ml.timing.stage`): score,
    with_champion, contexts, slates, reasons, marketing, prepublish_gate, publish (slate_log,
    written inside its transaction, included), slate_log; serving_inputs and marketing_inputs
    run beside the main thread (``background``)."""
    from ml.publish import publish_table
    from ml.quality.prepublish import check_recommendations

    wh = Warehouse.from_env(warehouse)
    excl = tuple(exclude_event_types or ["purchase"])
    # the registry first (its connection may write: on DuckDB a read-only connection cannot be
    # opened next to it)
    champion = champion_row(wh)
    pol, pol_version = resolve_policy(wh, policy, policy_params, exploration_budget, min_sessions)
    marketing_args = MarketingArgs(campaign_at, campaigns, campaign_holdout_share, new_item_budget)
    timings: Timings = {}
    with paused_gc():  # millions of small acyclic objects: no cyclic-GC rescans
        slates = _policy_slates(
            wh, champion, pol, excl, k, candidates_per_user, propensity_draws, run_id, marketing_args, timings
        )
    df = slates.rows.assign(policy_version=pol_version, model_version=slates.model_version, run_id=run_id)
    with stage("prepublish_gate", timings):
        check_recommendations(df, wh, k=k, exclude_event_types=excl)
    meta = {"policy": pol.name, "params": pol.get_params(), "propensity_draws": propensity_draws}

    def write_log(con: Any) -> None:
        with stage("slate_log", timings):
            log_slates(wh, con, run_id, df, slates.contexts, slates.as_of)

    with stage("publish", timings):
        res = publish_table(
            df[PUBLISHED_COLUMNS],
            "recommendations",
            run_id,
            wh,
            keep=keep_versions,
            model_version=slates.model_version,
            policy_version=pol_version,
            meta={**meta, "day": slates.day, "marketing": slates.marketing},
            # the slates become current together with their log, or neither does: OPE and the
            # feedback mart never miss the impressions of a version that was served
            in_transaction=write_log,
        )
    return {**_summary(res, df, slates), "policy": pol.name, "policy_version": pol_version, "stages": timings}


def _summary(res: Any, df: pd.DataFrame, slates: PolicySlates) -> dict[str, Any]:
    """What a publish run returns about the published version ``res`` of the rows ``df``."""
    return {
        "table": res.table,
        "view": res.view,
        "version": res.version,
        "rows": res.rows,
        "users": int(df["user_id"].nunique()),
        "model_version": slates.model_version,
        "exploration_share": round(float(df["is_exploration"].mean()), 4) if len(df) else 0.0,
        "mean_propensity": round(float(df["propensity"].mean()), 4) if len(df) else 0.0,
        "dropped_versions": res.dropped_versions,
        "campaigns": slates.marketing["campaigns"],
        "campaign_rows": int(df["campaign"].notna().sum()),
        "new_item_rows": int(df["new_item"].sum()),
        "cold_start_users": slates.cold_start_users,
    }


@dataclass
class PolicySlates:
    """The slates of a publish run before its version columns: the rows, the contexts the
    policy saw, the champion's version, the data's newest event and day, and what the
    marketing layer applied, and how many users got a cold-start slate."""

    rows: pd.DataFrame
    contexts: Any
    model_version: str
    as_of: pd.Timestamp
    day: str
    marketing: dict[str, Any]
    cold_start_users: int = 0


def _policy_slates(
    wh: Warehouse,
    champion: dict[str, Any],
    pol: Any,
    excl: tuple[str, ...],
    k: int,
    candidates_per_user: int,
    n_draws: int,
    run_id: str,
    m: MarketingArgs,
    timings: Timings,
) -> PolicySlates:
    """The champion's candidates, the policy's slates over them, then the marketing layer.

    What does not depend on the champion's candidates is read (and the policy fitted) while
    the champion's kernel runs, and the marketing layer's reads while the contexts are built,
    so on two cores the reads cost almost no wall time."""
    from ml.explore import store
    from ml.explore.candidates import CandidateSettings, build_contexts
    from ml.explore.slate import build_slates, flag_cold_start

    def serving_inputs() -> tuple[Any, dict[str, str], list[str]]:
        with stage("serving_inputs", timings):
            return _serving_inputs(wh, pol, excl)

    with stage("score", timings):
        scores = score_users(
            wh,
            k=max(candidates_per_user, k),
            exclude_event_types=excl,
            defer_reasons=True,
            champion=champion,
            alongside=serving_inputs,
        )
    arm_inputs, labels, known_users = scores.alongside
    with stage("with_champion", timings):
        inputs = store.with_champion(wh, arm_inputs, scores.rows, scores.users, scores.codes, excluded=scores.excluded)
    at = pd.Timestamp(m.at) if m.at else pd.Timestamp(inputs.as_of)
    # known users the champion has no candidates for (no history yet) get a cold-start slate
    # from the same contexts: popular interests as candidate arms, drawn by the serving policy
    cold = sorted(set(known_users).difference(scores.users))
    users = sorted([*scores.users, *cold]) if cold else scores.users

    def read_marketing_inputs() -> MarketingInputs:
        with stage("marketing_inputs", timings):
            return marketing_inputs(wh, at, m.campaigns, m.holdout_share, m.new_item_budget, users)

    ahead = in_background(read_marketing_inputs)
    with stage("contexts", timings):
        contexts = build_contexts(inputs, users, CandidateSettings(items_per_tag=k, slate_size=k))
    day = pd.Timestamp(inputs.as_of).strftime("%Y-%m-%d")
    draws: dict[str, Any] = {}
    with stage("slates", timings):
        df = build_slates(pol, contexts, k, day, run_id, n_draws=n_draws, labels=labels, draws_cache=draws)
    assert scores.reasons is not None  # (deferred above)
    with stage("reasons", timings):
        df = scores.reasons.result().fill(df)  # the champion's reasons, for shown rows only
    with stage("marketing", timings):
        df, applied = apply_marketing(
            wh,
            df,
            pol,
            contexts,
            inputs.items,
            k,
            day,
            n_draws,
            at=at,
            campaigns=m.campaigns,
            holdout_share=m.holdout_share,
            new_item_budget=m.new_item_budget,
            labels=labels,
            draws_cache=draws,
            prepared=ahead.result(),
            excluded=inputs.excluded,
        )
    df = flag_cold_start(df, cold, labels)
    return PolicySlates(df, contexts, scores.version_id, pd.Timestamp(inputs.as_of), day, applied, len(cold))


def log_slates(wh: Warehouse, con: Any, run_id: str, slates: pd.DataFrame, contexts: Any, as_of: Any) -> None:
    """Write the published slates and the contexts the policy saw to the slate log
    (``ml.logged_slates`` / ``ml.slate_contexts``, replacing the run's earlier rows) on ``con``,
    inside the publishing transaction."""
    from ml.explore import store

    with paused_gc():
        store.write_log(wh, con, run_id, slates, contexts, as_of)
