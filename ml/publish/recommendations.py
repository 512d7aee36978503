"""Publishing recommendations: plan, score shards, switch.

The champion recommender proposes candidates (its top ``candidates_per_user`` items per user,
with explanations), the serving policy (the registry's policy champion, a named policy, or
``greedy``) turns them into a slate of k slots per user, the marketing layer applies campaign
windows and the new-item budget, and the slates are published atomically with, per shown item,
its interest tag, policy, propensity and exploration flag. Every slate and the context the
policy saw are also appended to ``ml.logged_slates`` / ``ml.slate_contexts``, which the feedback
mart and OPE read, in the same transaction as the version switch.

1. :func:`plan` fixes what every shard must agree on: the champion, the serving policy and its
   version, what the policy learns from (the ``policy_reward`` setting, ``ml.explore.reward``),
   the settings and the number of shards.
2. :func:`score_shard` works out the slates of one shard's users (:mod:`ml.publish.shards`) in
   one plain single-threaded pass, checks them with the pre-publish gate and writes them, with
   their slate-log rows, as the shard's part: Parquet on DuckDB, ``COPY`` into the version's
   staged tables on PostgreSQL.
3. :func:`switch` publishes every shard's part as one version, with its slate log, in one
   transaction.

:func:`publish` runs the three in one process; the ``publish_recommendations`` DAG runs them as
tasks, the shards as a mapped task.

**What the shard count changes** (1 shard gives exactly the rows of a one-process run). Every
rule is per user except three shop-wide figures, which each shard computes from what it sees:
the candidate tags' and known tags' base click rates (learned from the feedback of the shard's
users' arms: with stable-hash shards a random sample of the shop, so close to the whole shop's),
and each new item's daily cap (each shard spends ``daily_cap / shards`` of it, so the item's
expected impressions stay under its cap; the propensities stay exact). The new-item draws of
each shard come from their own seeded stream. Popularity filling the champion's gaps is the
whole shop's in every shard (summed by the warehouse).

**What a shard reads.** The per-user tables (interactions, purchases, interest profiles,
sessions, segments, known users) only for its own users: the warehouse computes the shard hash
(:meth:`ml.publish.shards.Shard.where`), so a shard receives only its share of the rows (the
server still scans every row to pick them: the hash is of the id, not a column of the marts).
The interactions are read once, for scoring; the contexts derive known tags from the same rows.
The items, the category transitions and the bandit feedback (the policy's fit and the per-tag
rates are shop-wide) are read whole by every shard; of the feedback's (user, tag) and (user,
item) statistics a shard keeps its own users' only. The newest event is read once per shard.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.defaults import FAMILY
from ml.explore.candidates import CandidateInputs, ChampionCodes
from ml.explore.defaults import DEFAULT_POLICY, DEFAULT_PROPENSITY_DRAWS, DEFAULT_REWARD, POLICY_FAMILY
from ml.explore.reward import Learning, reward_column
from ml.features.interactions import load_decayed_interactions
from ml.marketing.serving import MarketingArgs, apply_marketing, marketing_inputs
from ml.publish.shards import SHARD_COLUMN, FolderParts, Shard, TableParts, run_folder
from ml.publish.tables import PublishResult, publish_staged, publish_table, staged_table, version_for
from ml.recommend.explain import ChampionReasons
from ml.timing import Timings, add_timings, stage
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
# the frames each shard writes (see ml.publish.shards)
PARTS = ("slates", "logged_slates", "slate_contexts")
NAME = "recommendations"
Parts = FolderParts | TableParts


@dataclass
class PublishSettings:
    """What a publish run is asked for (the ``publish_recommendations`` DAG's Params)."""

    k: int = 10
    keep_versions: int = 3
    exclude_event_types: list[str] = field(default_factory=lambda: ["purchase"])
    propensity_draws: int = DEFAULT_PROPENSITY_DRAWS
    candidates_per_user: int = 50
    marketing: MarketingArgs = field(default_factory=MarketingArgs)

    @property
    def excluded(self) -> tuple[str, ...]:
        return tuple(self.exclude_event_types or ["purchase"])


@dataclass
class PublishPlan:
    """What every shard of a run agrees on. Travels between tasks as :meth:`to_dict` (XCom)."""

    run_id: str
    shards: int
    champion_version: str
    champion_artifact: str
    policy: str
    policy_params: dict[str, Any]
    policy_version: str
    settings: PublishSettings
    reward: str = DEFAULT_REWARD
    reward_scale: float = 1.0

    @property
    def learning(self) -> Learning:
        """What the policy learns from (``ml.explore.reward``), the same in every shard."""
        return Learning(self.reward, self.reward_scale)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PublishPlan:
        s = dict(d["settings"])
        settings = PublishSettings(**{**s, "marketing": MarketingArgs(**s["marketing"])})
        return cls(**{**d, "settings": settings})

    @property
    def fingerprint(self) -> str:
        """A digest of the plan: a part written under another plan is refused by the switch."""
        return hashlib.sha1(json.dumps(self.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:16]


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


def choose_policy(
    wh: Warehouse,
    policy: str | None = None,
    policy_params: dict[str, Any] | None = None,
    exploration_budget: dict[str, float] | None = None,
    min_sessions: int | None = None,
) -> tuple[str, dict[str, Any], str]:
    """(policy name, its params, policy version) that serves this run.

    ``policy`` names one explicitly (version ``<name>-adhoc-<hash of params>``); otherwise the
    registry's ``policy`` champion serves, or ``greedy`` when there is none. The exploration
    budget and session cap, when given, override the slot allocator's."""
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
    return name, params, version


def default_shards(wh: Warehouse) -> int:
    """1 on DuckDB (one writer process per file, so one shard at a time gains nothing);
    otherwise the ``warehouse`` pool's slots as the scale-out deployment sets them
    (``INTERESTFLOW_WAREHOUSE_POOL_SLOTS``, default 4)."""
    if wh.kind == "duckdb":
        return 1
    from ml.settings import settings

    return settings().warehouse_pool_slots


def plan(
    wh: Warehouse,
    run_id: str,
    settings: PublishSettings,
    shards: int | None = None,
    policy: str | None = None,
    policy_params: dict[str, Any] | None = None,
    exploration_budget: dict[str, float] | None = None,
    min_sessions: int | None = None,
    reward: str | None = None,
) -> PublishPlan:
    """The :class:`PublishPlan` of run ``run_id`` (``shards``: None = :func:`default_shards`;
    ``reward``: what the policy learns from, None = the ``policy_reward`` setting).
    Creates the slate log's tables when missing (before the shards, which may run at once),
    clears the parts an earlier try of the same run left, and other runs' stale parts."""
    n = default_shards(wh) if shards is None else int(shards)
    if n < 1:
        raise ValueError(f"shards must be >= 1, got {n}")
    from ml.explore import store
    from ml.settings import settings as current_settings

    # an unknown reward fails before any work
    learning = Learning.of(reward or current_settings().policy_reward, lambda: store.item_prices(wh))
    champ = champion_row(wh)
    name, params, version = choose_policy(wh, policy, policy_params, exploration_budget, min_sessions)
    with wh.connect() as con:  # the slate log's tables, whose columns the staged log tables copy
        store.ensure_tables(wh, con)
    parts = parts_for(wh, run_id)
    parts.clear()
    swept = parts.sweep()
    if swept:
        log.info("removed the parts of %d abandoned publish runs: %s", len(swept), swept)
    return PublishPlan(
        run_id,
        n,
        str(champ["version_id"]),
        str(champ["artifact_path"]),
        name,
        params,
        version,
        settings,
        learning.reward,
        learning.scale,
    )


def parts_folder(run_id: str) -> Path:
    from ml.config import state_dir

    return run_folder(state_dir(), run_id)


def parts_for(wh: Warehouse, run_id: str) -> Parts:
    """Where the shards of run ``run_id`` write their parts: Parquet folders under the state
    folder on DuckDB, the version's staged tables on PostgreSQL (:mod:`ml.publish.shards`)."""
    if wh.kind == "duckdb":
        return FolderParts(parts_folder(run_id))
    from ml.explore import columns as C

    staged = staged_table(NAME, run_id)
    return TableParts(
        wh,
        NAME,
        version_for(run_id),
        tables={"slates": staged, "logged_slates": f"{staged}_log", "slate_contexts": f"{staged}_contexts"},
        like={"logged_slates": C.LOGGED_SLATES, "slate_contexts": C.SLATE_CONTEXTS},
    )


def score_shard(wh: Warehouse, p: PublishPlan, index: int) -> dict[str, Any]:
    """Shard ``index`` of plan ``p``: its users' slates and slate-log rows, checked by the
    pre-publish gate and written as the shard's part (replacing an earlier try's). Returns what
    the shard wrote and its stages' seconds."""
    from ml.explore.policies import make_policy
    from ml.explore.store import log_frames
    from ml.quality.prepublish import check_recommendations

    shard = Shard(index, p.shards)
    timings: Timings = {}
    pol = make_policy(p.policy, **p.policy_params)
    with paused_gc():  # millions of small acyclic objects: no cyclic-GC rescans
        slates = policy_slates(wh, p, pol, shard, timings)
        df = slates.rows.assign(policy_version=p.policy_version, model_version=p.champion_version, run_id=p.run_id)
        with stage("slate_log_rows", timings):
            logged, contexts = log_frames(p.run_id, df, slates.contexts, slates.as_of)
    with stage("prepublish_gate", timings):
        check_recommendations(df, wh, k=p.settings.k, exclude_event_types=p.settings.excluded, shard=shard)
    meta = {
        "plan": p.fingerprint,
        "shard": index,
        "users": int(df["user_id"].nunique()),
        "rows": len(df),
        "exploration_rows": int(df["is_exploration"].sum()),
        "propensity_sum": float(df["propensity"].sum()),
        "campaign_rows": int(df["campaign"].notna().sum()),
        "new_item_rows": int(df["new_item"].sum()),
        "as_of": str(slates.as_of),
        "day": slates.day,
        "marketing": slates.marketing,
        "cold_start_users": slates.cold_start_users,
    }
    parts = parts_for(wh, p.run_id)
    with stage("write_part", timings):
        frames = {"slates": df[PUBLISHED_COLUMNS], "logged_slates": logged, "slate_contexts": contexts}
        part = parts.write(shard, frames, {**meta, "stages": timings})
    return {**meta, "part": part, "stages": timings}


def switch(wh: Warehouse, p: PublishPlan) -> dict[str, Any]:
    """Publish every shard's part of plan ``p`` (each passed the pre-publish gate) as one new
    version, with its slate log, in one transaction; the parts go with the same commit
    (PostgreSQL) or right after it (DuckDB)."""
    from ml.explore import store

    timings: Timings = {}
    parts = parts_for(wh, p.run_id)
    with stage("read_parts", timings):
        metas = parts.metas(p.shards)
    stale = [m["shard"] for m in metas if m["plan"] != p.fingerprint]
    if stale:
        raise RuntimeError(f"the parts of shards {stale} of run {p.run_id} were written under another plan: rerun them")
    first = metas[0]
    meta = {
        "policy": p.policy,
        "params": p.policy_params,
        "reward": p.reward,
        "reward_scale": p.reward_scale,
        "propensity_draws": p.settings.propensity_draws,
        "shards": p.shards,
        "day": first["day"],
        "marketing": first["marketing"],
    }
    versions: dict[str, Any] = {"model_version": p.champion_version, "policy_version": p.policy_version, "meta": meta}
    keep = p.settings.keep_versions
    with stage("publish", timings):
        if isinstance(parts, TableParts):

            def move_log(con: Any) -> None:
                with stage("slate_log", timings):
                    store.move_log(wh, con, p.run_id, parts.tables["logged_slates"], parts.tables["slate_contexts"])
                    parts.clear(con)

            rows = sum(int(m["rows"]) for m in metas)  # what the shards staged
            res = publish_staged(
                NAME, p.run_id, rows, wh, keep, drop_columns=[SHARD_COLUMN], in_transaction=move_log, **versions
            )
        else:
            frames = parts.frames(p.shards, PARTS)

            def write_log(con: Any) -> None:
                with stage("slate_log", timings):
                    store.write_log(wh, con, p.run_id, frames["logged_slates"], frames["slate_contexts"])

            # the slates become current together with their log, or neither does: OPE and the
            # feedback mart never miss the impressions of a version that was served
            res = publish_table(frames["slates"], NAME, p.run_id, wh, keep, in_transaction=write_log, **versions)
            parts.clear()
    return _switch_summary(p, res, metas, timings)


def _switch_summary(
    p: PublishPlan, res: PublishResult, metas: list[dict[str, Any]], timings: Timings
) -> dict[str, Any]:
    rows = res.rows
    return {
        "table": res.table,
        "view": res.view,
        "version": res.version,
        "rows": res.rows,
        "users": sum(int(m["users"]) for m in metas),
        "model_version": p.champion_version,
        "exploration_share": round(sum(int(m["exploration_rows"]) for m in metas) / rows, 4) if rows else 0.0,
        "mean_propensity": round(sum(float(m["propensity_sum"]) for m in metas) / rows, 4) if rows else 0.0,
        "dropped_versions": res.dropped_versions,
        "campaigns": metas[0]["marketing"]["campaigns"],
        "campaign_rows": sum(int(m["campaign_rows"]) for m in metas),
        "new_item_rows": sum(int(m["new_item_rows"]) for m in metas),
        "cold_start_users": sum(int(m["cold_start_users"]) for m in metas),
        "policy": p.policy,
        "policy_version": p.policy_version,
        "reward": p.reward,
        "shards": p.shards,
        "stages": timings,
    }


def publish(wh: Warehouse, p: PublishPlan) -> dict[str, Any]:
    """Every shard of ``p`` one after the other, then the switch, in this process. The result's
    ``stages`` adds up each stage's seconds over the shards and the switch."""
    timings: Timings = {}
    for index in range(p.shards):
        add_timings(timings, score_shard(wh, p, index)["stages"])
    out = switch(wh, p)
    add_timings(timings, out["stages"])
    return {**out, "stages": timings}


# ------------------------------------------------------------------------- one shard's slates


@dataclass
class ChampionScores:
    """What :func:`score_users` returns: the candidate rows (user_id, rank, item_id, score,
    reason, reason_tag, model_version), the champion's version, the rows' distinct users
    (sorted), the rows as positions into (user ids, item ids), the excluded (user_id, item_id)
    pairs, the deferred :class:`ChampionReasons` (None when the rows carry their reasons) and
    the interactions the users were scored on (user_id, item_id, weight, n_events, last_at: the
    contexts derive known tags from them, so they are not read twice)."""

    rows: pd.DataFrame
    version_id: str
    users: list[str]
    codes: ChampionCodes
    excluded: pd.DataFrame
    reasons: ChampionReasons | None = None
    interactions: pd.DataFrame | None = None


def score_users(
    wh: Warehouse,
    k: int = 10,
    exclude_event_types: tuple[str, ...] = ("purchase",),
    defer_reasons: bool = False,
    champion: dict[str, Any] | None = None,
    shard: Shard | None = None,
    as_of: pd.Timestamp | None = None,
) -> ChampionScores:
    """Top-k for every active user of ``shard`` (default: all) with the champion (``champion``:
    its registry row when the caller has read it already), popularity over every user's
    interactions filling any gaps. Only the shard's users' interactions are read (the warehouse
    selects them); popularity is the whole shop's, summed by the warehouse.

    With ``defer_reasons`` the rows' ``reason``/``reason_tag`` are left empty and the result's
    ``reasons`` is the :class:`ChampionReasons` that explains any (user, item) rows later:
    publishing explains only the ~k shown rows per user, not every candidate. ``as_of``: the
    newest event, when the caller has read it (else it is read here)."""
    from ml.recommend import InteractionData
    from ml.registry import load_artifact

    champ = champion if champion is not None else champion_row(wh)
    art = load_artifact(champ["artifact_path"])
    model = art["model"]
    half_life, excluded_types = art.get("half_life_days", 14.0), tuple(exclude_event_types)
    # decayed weights aggregated by the warehouse (the same as ``decayed`` over every event)
    inter = load_decayed_interactions(wh, half_life, excluded_types, None if shard is None else shard.where(wh), as_of)
    X = InteractionData.from_frame(inter.frame, user_ids=inter.users, item_ids=art["item_ids"]).matrix
    excl = InteractionData.from_frame(inter.excluded, user_ids=inter.users, item_ids=art["item_ids"]).matrix
    popularity = inter.popularity.reindex(art["item_ids"], fill_value=0.0)  # (the whole shop's)
    pop_order = np.argsort(-popularity.to_numpy(), kind="stable")
    users, excluded_pairs, interactions = np.asarray(inter.users, dtype=object), inter.excluded, inter.frame
    del inter
    idx, sc = model.recommend(X, k=k, exclude=excl)
    filled = _fill_from_popularity(idx, sc, pop_order, excl)
    items = wh.query("select item_id, title, category_l3, category_path from marts.item_features")
    item_ids = np.asarray(art["item_ids"])
    u_ix, r_ix = np.nonzero(idx >= 0)  # user by user, rank by rank
    picked = idx[u_ix, r_ix]
    reasons = ChampionReasons(model, X, users, item_ids, items, idx, filled)
    # the id columns stay Python objects: turning 6M ids into Arrow strings took ~1.2 s on the
    # large shop, and the rows only feed the contexts (by code)
    df = pd.DataFrame(
        {
            "user_id": pd.Series(users[u_ix], dtype=object, copy=False),
            "rank": r_ix + 1,
            "item_id": pd.Series(np.asarray(item_ids, dtype=object)[picked], dtype=object, copy=False),
            "score": sc[u_ix, r_ix].astype(np.float64),
        }
    )
    if defer_reasons:
        df["reason"] = pd.Series(np.full(len(df), None, dtype=object), dtype=object, copy=False)
        df["reason_tag"] = pd.Series(np.full(len(df), None, dtype=object), dtype=object, copy=False)
    else:
        df["reason"], df["reason_tag"] = reasons.for_slots(u_ix, picked)
    df["model_version"] = champ["version_id"]
    # the distinct users of the rows, sorted (found from the row codes, not the 6M-row column)
    present = np.flatnonzero(np.bincount(u_ix, minlength=len(users)))
    return ChampionScores(
        rows=df,
        version_id=str(champ["version_id"]),
        users=sorted(users[present].tolist()),
        codes=ChampionCodes(u_ix, picked, users, item_ids),
        excluded=excluded_pairs,  # (the same pairs as the matrix ``excl``)
        reasons=reasons if defer_reasons else None,
        interactions=interactions,
    )


def _fill_from_popularity(idx: np.ndarray, sc: np.ndarray, pop_order: np.ndarray, excl: Any) -> np.ndarray:
    """Fill the empty slots (-1) of the candidate matrix ``idx`` (users, k) with popular items
    (``pop_order``: item indices, most popular first), never repeating or recommending excluded
    items, scored below the user's lowest score; in place. Returns the filled slots (explained
    as popular)."""
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
class ShardSlates:
    """One shard's slates before their version columns: the rows, the contexts the policy saw,
    the data's newest event and day, what the marketing layer applied, and how many users got
    a cold-start slate."""

    rows: pd.DataFrame
    contexts: Any
    as_of: pd.Timestamp
    day: str
    marketing: dict[str, Any]
    cold_start_users: int = 0


def serving_inputs(
    wh: Warehouse, p: PublishPlan, pol: Any, shard: Shard
) -> tuple[CandidateInputs, dict[str, str], list[str]]:
    """Fit ``pol`` on the whole feedback (in place) and return what the shard's contexts need
    besides the champion's candidates: the arm inputs (``ml.explore.store.read_arm_inputs``, with the
    feedback statistics of the shard's users), the tag labels and the shard's known users."""
    from ml.explore import store
    from ml.explore.feedback import STATS_COLUMNS

    # only the columns the policy's fit and the feedback statistics read (5 of 18 for most
    # policies: the rest is most of the bytes)
    learning = p.learning
    feedback = store.load_feedback(wh, columns=(*STATS_COLUMNS, reward_column(learning.reward), *pol.feedback_columns))
    pol.fit(feedback, learning)
    mine = shard.where(wh)  # (the shard's users, selected by the warehouse)
    arm_inputs = store.read_arm_inputs(
        wh,
        p.settings.excluded,
        feedback,
        read_excluded=False,
        users_where=mine,
        learning=learning,
        feedback_users=None if shard.whole else shard.holds(feedback["user_id"]),
    )
    return arm_inputs, store.read_labels(wh), store.read_known_users(wh, users_where=mine)


def policy_slates(wh: Warehouse, p: PublishPlan, pol: Any, shard: Shard, timings: Timings) -> ShardSlates:
    """The champion's candidates for the shard's users, the policy's slates over them, then the
    marketing layer; known users of the shard without candidates (no history yet) get a
    cold-start slate from popular interests, drawn by the same policy."""
    from ml.explore import store
    from ml.explore.candidates import CandidateSettings, build_contexts
    from ml.explore.slate import build_slates, flag_cold_start

    s, m = p.settings, p.settings.marketing
    champion = {"version_id": p.champion_version, "artifact_path": p.champion_artifact}
    with stage("serving_inputs", timings):
        arm_inputs, labels, known = serving_inputs(wh, p, pol, shard)
    with stage("score", timings):
        k_cand = max(s.candidates_per_user, s.k)
        scores = score_users(
            wh, k_cand, s.excluded, defer_reasons=True, champion=champion, shard=shard, as_of=arm_inputs.as_of
        )
    with stage("with_champion", timings):
        inputs = store.with_champion(
            wh,
            arm_inputs,
            scores.rows,
            scores.users,
            scores.codes,
            excluded=scores.excluded,
            interactions=scores.interactions,
        )
        scores.interactions = None  # (``inputs`` keeps them where the contexts need them; else freed)
    at = pd.Timestamp(m.at) if m.at else pd.Timestamp(inputs.as_of)
    cold = sorted(set(known).difference(scores.users))
    users = sorted([*scores.users, *cold]) if cold else scores.users
    with stage("marketing_inputs", timings):
        prepared = marketing_inputs(wh, at, m.campaigns, m.holdout_share, m.new_item_budget, users)
    with stage("contexts", timings):
        contexts = build_contexts(inputs, users, CandidateSettings(items_per_tag=s.k, slate_size=s.k))
    day = pd.Timestamp(inputs.as_of).strftime("%Y-%m-%d")
    draws: dict[str, Any] = {}
    with stage("slates", timings):
        df = build_slates(
            pol, contexts, s.k, day, p.run_id, n_draws=s.propensity_draws, labels=labels, draws_cache=draws
        )
    assert scores.reasons is not None  # (deferred above)
    with stage("reasons", timings):
        df = scores.reasons.fill(df)  # the champion's reasons, for shown rows only
    with stage("marketing", timings):
        df, applied = apply_marketing(
            wh,
            df,
            pol,
            contexts,
            inputs.items,
            s.k,
            day,
            s.propensity_draws,
            at=at,
            campaigns=m.campaigns,
            holdout_share=m.holdout_share,
            new_item_budget=m.new_item_budget,
            labels=labels,
            draws_cache=draws,
            prepared=prepared,
            excluded=inputs.excluded,
            shard=shard,
        )
    df = flag_cold_start(df, cold, labels)
    return ShardSlates(df, contexts, pd.Timestamp(inputs.as_of), day, applied, len(cold))
