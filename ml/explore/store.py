"""Warehouse I/O of the explore/exploit layer.

Reads other teams' tables defensively (a missing table or column means "not there yet"):
``ml.user_interest_profiles``, ``ml.user_segments``, ``ml.category_transitions``,
``reference.tag_vocabulary``, ``marts.user_features`` (sessions; else ``staging.stg_shop__events``). Writes its own:
``ml.logged_slates`` (every shown slot with tag, policy and propensity; the feedback mart joins
to it), ``ml.slate_contexts`` (what the policy saw, one JSON per slate; OPE replays it) and
``ml.policy_estimates`` (one row per evaluation run x policy x estimator; ``is_current`` marks the
policy that was serving when the evaluation ran, ``reward`` what the estimate measures). Writes delete the run's rows first, so
re-running a run is idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ml.explore import columns as C
from ml.explore.candidates import CandidateInputs, ChampionCodes, item_arm_tags
from ml.explore.context import ContextList, SlateContext
from ml.explore.feedback import FeedbackStats
from ml.explore.reward import Learning
from ml.frames import isin
from ml.warehouse import Warehouse, where_clause

log = logging.getLogger(__name__)

DDL = {
    C.LOGGED_SLATES: """recommendation_id varchar, run_id varchar, user_id varchar, position integer,
        item_id varchar, tag varchar, policy varchar, policy_version varchar, propensity double precision,
        propensity_se double precision, is_exploration boolean, score double precision, arm_features varchar,
        as_of timestamp""",
    C.SLATE_CONTEXTS: """recommendation_id varchar, run_id varchar, user_id varchar, policy varchar,
        as_of timestamp, context varchar""",
    C.POLICY_ESTIMATES: """evaluated_at timestamptz, run_id varchar, policy varchar, estimator varchar,
        estimate double precision, ci_low double precision, ci_high double precision, n bigint,
        is_current boolean, reward varchar""",
}
# columns added after a table was first released: (table, column, type), added where missing
ADDED_COLUMNS = ((C.POLICY_ESTIMATES, "reward", "varchar"),)


def ensure_tables(wh: Warehouse, con: Any) -> None:
    wh.ensure_schemas(con)
    for table, ddl in DDL.items():
        wh.execute(con, f"create table if not exists {table} ({ddl})")
    for table, column, kind in ADDED_COLUMNS:
        wh.execute(con, f"alter table {table} add column if not exists {column} {kind}")


def _exists(wh: Warehouse, con: Any, qualified: str) -> bool:
    schema, table = qualified.split(".")
    return wh.table_exists(con, schema, table)


def _columns(wh: Warehouse, con: Any, qualified: str) -> set[str]:
    schema, table = qualified.split(".")
    return set(wh.table_columns(con, schema, table))


def read_optional(
    wh: Warehouse, qualified: str, needed: tuple[str, ...], con: Any = None, where: str | None = None
) -> pd.DataFrame | None:
    """``select needed from qualified [where ...]`` when the table exists with those columns,
    else None."""
    if con is None:
        with wh.connect(read_only=True) as c:
            return read_optional(wh, qualified, needed, c, where)
    if not _exists(wh, con, qualified):
        return None
    missing = set(needed) - _columns(wh, con, qualified)
    if missing:
        log.warning("%s lacks columns %s; not using it", qualified, sorted(missing))
        return None
    return wh.read_table(qualified, con, needed, where)


def read_profiles(wh: Warehouse, con: Any = None, users_where: str | None = None) -> pd.DataFrame | None:
    """The tagging engineer's ``ml.user_interest_profiles`` (its latest ``as_of`` only), if
    present; ``users_where``: only the users that match this SQL condition on ``user_id``."""
    if con is None:
        with wh.connect(read_only=True) as c:
            return read_profiles(wh, c, users_where)
    table = "ml.user_interest_profiles"
    need = ("user_id", "tag", "weight", "evidence_count", "last_seen", "uncertainty", "status")
    latest = f"as_of = (select max(as_of) from {table})" if "as_of" in _columns(wh, con, table) else None
    where = " and ".join(f"({c})" for c in (latest, users_where) if c) or None
    df = read_optional(wh, table, need, con, where)
    if df is None or df.empty:
        return None
    df["weight"] = df["weight"].astype(float)
    df["evidence_count"] = df["evidence_count"].fillna(0).astype(float)
    return df


def read_transitions(
    wh: Warehouse, items: pd.DataFrame, item_features: pd.DataFrame, con: Any = None
) -> pd.DataFrame | None:
    """``ml.category_transitions`` mapped onto category tags (values may be tags, leaf names or
    category paths); None when absent or unmappable. ``items``: item_id, tag."""
    df = read_optional(wh, "ml.category_transitions", ("from_category", "to_category", "probability"), con)
    if df is None or df.empty:
        return None
    m = item_features.merge(items[["item_id", "tag"]], on="item_id")
    to_tag: dict[str, str] = {}
    for col in ("category_path", "category_l3", "tag"):
        if col in m:
            to_tag.update(dict(zip(m[col].astype(str), m["tag"], strict=True)))
    df = df.assign(
        from_tag=df["from_category"].astype(str).map(to_tag), to_tag=df["to_category"].astype(str).map(to_tag)
    )
    df = df.dropna(subset=["from_tag", "to_tag"])
    return df[["from_tag", "to_tag", "probability"]] if len(df) else None


def read_sessions(wh: Warehouse, con: Any = None, users_where: str | None = None) -> dict[str, int]:
    """Sessions per user: the feature layer's (``marts.user_features.n_sessions``, sessions
    rebuilt with the inactivity rule, one row per user), else distinct session ids in staging,
    else distinct active days; ``users_where``: only the users that match this SQL condition."""
    if con is None:
        with wh.connect(read_only=True) as c:
            return read_sessions(wh, c, users_where)
    df = read_optional(wh, "marts.user_features", ("user_id", "n_sessions"), con, users_where)
    if df is not None and len(df):
        return dict(zip(df["user_id"], df["n_sessions"].astype(int), strict=True))
    if _exists(wh, con, "staging.stg_shop__events") and "session_id" in _columns(wh, con, "staging.stg_shop__events"):
        # (distinct pairs first, then a count: PostgreSQL hashes that, where count(distinct)
        # sorts every user's rows)
        df = wh.query(
            "select user_id, count(*) as n from (select distinct user_id, session_id "
            f"from staging.stg_shop__events{where_clause('session_id is not null', users_where)}) s group by user_id",
            None,
            con,
        )
        if len(df):
            return dict(zip(df["user_id"], df["n"].astype(int), strict=True))
    df = wh.query(
        "select user_id, count(distinct cast(event_at as date)) as n from marts.interaction_events"
        f"{where_clause(users_where)} group by user_id",
        None,
        con,
    )
    return dict(zip(df["user_id"], df["n"].astype(int), strict=True))


def read_segments(wh: Warehouse, con: Any = None, users_where: str | None = None) -> dict[str, str]:
    df = read_optional(wh, "ml.user_segments", ("user_id", "segment"), con, users_where)
    if df is None:
        return {}
    return dict(zip(df["user_id"].astype(str), df["segment"].astype(str), strict=True))


def read_known_users(wh: Warehouse, con: Any = None, users_where: str | None = None) -> list[str]:
    """Every user the shop has told us about (``marts.user_features``: the users batch and
    anyone with an event), sorted; empty before the mart is built. ``users_where``: only the
    users that match this SQL condition on ``user_id``."""
    df = read_optional(wh, "marts.user_features", ("user_id",), con, users_where)
    return [] if df is None else sorted(df["user_id"].dropna().astype(str).unique().tolist())


def read_labels(wh: Warehouse, con: Any = None) -> dict[str, str]:
    df = read_optional(wh, "reference.tag_vocabulary", ("tag", "description"), con)
    if df is None:
        return {}
    return dict(zip(df["tag"].astype(str), df["description"].astype(str), strict=True))


def load_feedback(wh: Warehouse, con: Any = None, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """``marts.bandit_feedback`` (empty frame with the mart's columns when it is not built yet);
    ``columns``: only these (in the mart's order), for a reader that needs no more."""
    if con is None:
        with wh.connect(read_only=True) as c:
            return load_feedback(wh, c, columns)
    wanted = [c for c in C.FEEDBACK_COLUMNS if columns is None or c in columns]
    if not _exists(wh, con, C.BANDIT_FEEDBACK):
        return pd.DataFrame(columns=wanted)
    df = wh.read_table(C.BANDIT_FEEDBACK, con, None if columns is None else wanted)
    if C.SHOWN_AT in df:
        df[C.SHOWN_AT] = pd.to_datetime(df[C.SHOWN_AT])
    return df


def log_frames(
    run_id: str, slates: pd.DataFrame, contexts: Sequence[SlateContext], as_of: Any
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows of ``ml.logged_slates`` (one per shown item) and ``ml.slate_contexts`` (one per
    slate: the context the policy saw, as JSON) of the published ``slates`` of run ``run_id``."""
    ts = pd.Timestamp(as_of).tz_localize(None) if pd.Timestamp(as_of).tzinfo else pd.Timestamp(as_of)
    logged = pd.DataFrame(
        {
            C.RECOMMENDATION_ID: slates[C.RECOMMENDATION_ID],
            C.RUN_ID: run_id,
            "user_id": slates["user_id"],
            C.POSITION: slates["rank"].astype("int32"),
            "item_id": slates["item_id"],
            C.TAG: slates["reason_tag"],
            C.POLICY: slates[C.POLICY],
            C.POLICY_VERSION: slates[C.POLICY_VERSION],
            C.PROPENSITY: slates[C.PROPENSITY].astype(float),
            C.PROPENSITY_SE: slates[C.PROPENSITY_SE].astype(float),
            C.IS_EXPLORATION: slates[C.IS_EXPLORATION].astype(bool),
            "score": slates["score"].astype(float),
            C.ARM_FEATURES: slates[C.ARM_FEATURES],
            C.AS_OF: ts,
        }
    )
    # each user's recommendation id (its last row's, as a dict over the rows would keep)
    last = slates[["user_id", C.RECOMMENDATION_ID]].drop_duplicates("user_id", keep="last")
    rid_of = last[C.RECOMMENDATION_ID].to_numpy(dtype=object)
    policy = str(slates[C.POLICY].iloc[0]) if len(slates) else ""
    columns = ContextList.of(contexts).columns  # (each context's JSON written from the columns)
    ctx_users, texts = list(columns.users), columns.to_json_rows()
    ctx = pd.DataFrame(
        {
            C.RECOMMENDATION_ID: _pick(
                rid_of, pd.Index(last["user_id"]).get_indexer(pd.Index(ctx_users, dtype=object))
            ),
            C.RUN_ID: run_id,
            "user_id": ctx_users,
            C.POLICY: policy,
            C.AS_OF: ts,
            C.CONTEXT: texts,
        }
    )
    return logged, ctx[ctx[C.RECOMMENDATION_ID].notna()].reset_index(drop=True)


def write_log(wh: Warehouse, con: Any, run_id: str, logged: pd.DataFrame, contexts: pd.DataFrame) -> None:
    """Replace run ``run_id``'s rows of ``ml.logged_slates`` and ``ml.slate_contexts`` with the
    :func:`log_frames` ``logged`` and ``contexts``."""
    ensure_tables(wh, con)
    wh.execute(con, f"delete from {C.LOGGED_SLATES} where run_id = ?", [run_id])
    wh.execute(con, f"delete from {C.SLATE_CONTEXTS} where run_id = ?", [run_id])
    wh.append_df(con, C.LOGGED_SLATES, logged)
    wh.append_df(con, C.SLATE_CONTEXTS, contexts)


def move_log(wh: Warehouse, con: Any, run_id: str, logged_table: str, contexts_table: str) -> None:
    """:func:`write_log` for rows already in the warehouse: replace run ``run_id``'s rows of
    ``ml.logged_slates`` and ``ml.slate_contexts`` with those of ``logged_table`` and
    ``contexts_table`` (staged by a publish run's shards; their own columns are left out)."""
    ensure_tables(wh, con)
    for target, source in ((C.LOGGED_SLATES, logged_table), (C.SLATE_CONTEXTS, contexts_table)):
        wh.execute(con, f"delete from {target} where run_id = ?", [run_id])
        cols = ", ".join(f'"{c}"' for c in wh.table_columns(con, *target.split(".")))
        wh.execute(con, f"insert into {target} ({cols}) select {cols} from {source}")


def _pick(values: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``values[pos]``, None where ``pos`` is -1."""
    out = np.full(len(pos), None, dtype=object)
    out[pos >= 0] = values[pos[pos >= 0]]
    return out


def load_contexts(wh: Warehouse, recommendation_ids: list[str], con: Any = None) -> dict[str, SlateContext]:
    """Logged contexts by recommendation_id."""
    if con is None:
        with wh.connect(read_only=True) as c:
            return load_contexts(wh, recommendation_ids, c)
    if not recommendation_ids or not _exists(wh, con, C.SLATE_CONTEXTS):
        return {}
    wanted = pd.DataFrame({C.RECOMMENDATION_ID: sorted(set(recommendation_ids))})
    if wh.kind == "duckdb":
        con.register("_wanted_rids", wanted)
        try:
            df = wh.query(
                f"select c.recommendation_id, c.context from {C.SLATE_CONTEXTS} c "
                "join _wanted_rids w on w.recommendation_id = c.recommendation_id",
                None,
                con,
            )
        finally:
            con.unregister("_wanted_rids")
    else:
        df = wh.query(
            f"select recommendation_id, context from {C.SLATE_CONTEXTS} where recommendation_id = any(?)",
            [list(wanted[C.RECOMMENDATION_ID])],
            con,
        )
    return {r: SlateContext.from_json(t) for r, t in zip(df[C.RECOMMENDATION_ID], df[C.CONTEXT], strict=True)}


def read_candidate_inputs(
    wh: Warehouse, champion: pd.DataFrame, exclude_event_types: tuple[str, ...], feedback: pd.DataFrame
) -> CandidateInputs:
    """Everything ``ml.explore.candidates.build_contexts`` needs, read from the warehouse.

    ``champion``: the champion's candidates (user_id, item_id, score, reason). Interactions
    (``marts.interactions``) are read only when some of those users have no interest profile:
    they serve only to derive such users' known tags. The same as :func:`read_arm_inputs`
    followed by :func:`with_champion`."""
    return with_champion(wh, read_arm_inputs(wh, exclude_event_types, feedback), champion)


def read_item_features(wh: Warehouse, con: Any = None) -> pd.DataFrame:
    """The ``marts.item_features`` columns the arms' tags are made of (:func:`item_arm_tags`)."""
    return wh.query(
        "select item_id, category_path, category_l1, category_l3, n_users from marts.item_features", None, con
    )


def read_arm_inputs(
    wh: Warehouse,
    exclude_event_types: tuple[str, ...],
    feedback: pd.DataFrame,
    read_excluded: bool = True,
    users_where: str | None = None,
    learning: Learning = Learning(),
    feedback_users: np.ndarray | None = None,
) -> CandidateInputs:
    """The part of :func:`read_candidate_inputs` that does not depend on the champion's
    candidates (items and their tags, profiles, purchases, transitions, sessions, segments,
    feedback statistics), with no champion rows and no interactions yet: publishing reads it
    while the champion scores, and adds the candidates with :func:`with_champion`.

    ``read_excluded=False`` leaves the excluded (purchased) pairs empty: publishing has them
    from scoring already and hands them to :func:`with_champion`. ``users_where``: a SQL
    condition on ``user_id`` (a publish shard's): the per-user tables are read for those users
    only; items, transitions and the feedback are the whole shop's. ``learning``: the reward
    the feedback statistics count as successes (``ml.explore.reward``); ``feedback_users``: a
    boolean mask of the feedback rows of those users (the statistics keep their (user, tag) and
    (user, item) pairs only, see :meth:`FeedbackStats.from_feedback`)."""
    from ml.features.interactions import load_excluded_pairs, newest_event

    with wh.connect(read_only=True) as con:
        feats = read_item_features(wh, con)
        items = item_arm_tags(feats)
        profiles = read_profiles(wh, con, users_where)
        excluded = load_excluded_pairs(wh, tuple(exclude_event_types) if read_excluded else (), con, users_where)[
            ["user_id", "item_id"]
        ]
        as_of = newest_event(wh, con)
        transitions = read_transitions(wh, items, feats, con)
        sessions = read_sessions(wh, con, users_where)
        segments = read_segments(wh, con, users_where)
    item_tags = dict(zip(items["item_id"], items["tag"], strict=True))
    return CandidateInputs(
        items=items,
        excluded=excluded,
        as_of=as_of,
        profiles=profiles,
        transitions=transitions,
        sessions=sessions,
        segments=segments,
        feedback=FeedbackStats.from_feedback(feedback, item_tags, learning, feedback_users),
    )


def item_prices(wh: Warehouse) -> pd.Series:
    """The catalogue's prices (``marts.item_features``), for the revenue reward's scale."""
    return wh.query("select price from marts.item_features")["price"]


def with_champion(
    wh: Warehouse,
    inputs: CandidateInputs,
    champion: pd.DataFrame,
    users: Any = None,
    codes: ChampionCodes | None = None,
    excluded: pd.DataFrame | None = None,
    interactions: pd.DataFrame | None = None,
) -> CandidateInputs:
    """``inputs`` (from :func:`read_arm_inputs`) with the champion's candidates, and with the
    interactions of ``marts.interactions`` when some of the candidates' users have no interest
    profile. ``users``: the candidates' distinct user ids when the caller has them (spares
    finding them among millions of rows); ``codes``: the rows as positions into (user ids, item
    ids), see ``CandidateInputs.champion_codes``; ``excluded``: the excluded pairs (user_id,
    item_id) when the caller read them (``read_arm_inputs(read_excluded=False)``);
    ``interactions``: the candidates' users' rows of ``marts.interactions`` (user_id, item_id,
    weight, n_events, last_at) when the caller read them (publishing scores on them), else they
    are read when needed."""
    import dataclasses

    if users is None:
        users = champion["user_id"].astype(str).unique()
    profiles = inputs.profiles
    profiled = profiles["user_id"].astype(str).unique() if profiles is not None else []
    inter = inputs.interactions
    if not bool(isin(np.asarray(users, dtype=object), profiled).all()):  # known tags from interactions
        inter = interactions
        if inter is None:
            from ml.features.interactions import PAIR_COLUMNS

            inter = wh.query_typed(
                "select user_id, item_id, decayed_weight as weight, n_events, last_at from marts.interactions",
                PAIR_COLUMNS,
            )
    extra = {"excluded": excluded[["user_id", "item_id"]]} if excluded is not None else {}
    return dataclasses.replace(
        inputs,
        champion=champion[["user_id", "item_id", "score", "reason"]],
        interactions=inter,
        champion_codes=codes,
        **extra,
    )
