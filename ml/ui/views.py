"""What the Interestflow page shows, as JSON-ready dicts built from one :class:`ReadSession`.

Every table here belongs to another part of the platform and may not exist yet (or may lack a
column): each section checks the catalogue first and answers ``{"available": false,
"message": ...}`` instead of failing. All queries are parameterised (``?``) and run unchanged on
DuckDB and PostgreSQL. Times are ISO 8601 strings; rates are fractions in [0, 1].
"""

from __future__ import annotations

import importlib
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml import columns as C
from ml.defaults import FAMILY as RECOMMENDER_FAMILY
from ml.defaults import PRIMARY_METRIC as RECOMMENDER_PRIMARY
from ml.explore import columns as EXPLORE_COLUMNS
from ml.tagging.store import PROFILE_COLUMNS as TAGGING_PROFILE_COLUMNS
from ml.ui.errors import BadInput, NoSuchUser
from ml.ui.reader import ReadSession

# --- tables of the shared warehouse contract ---------------------------------------------------
MODEL_VERSIONS = "registry.model_versions"
CHAMPIONS = "registry.champions"
GATE_DECISIONS = "registry.gate_decisions"
GATE_RUNS = "quality.gate_runs"
QUARANTINE = "raw.quarantine"
INGEST_BATCHES = "raw.ingest_batches"
RAW_EVENTS = "raw.events"
RAW_USERS = "raw.users"
POLICY_ESTIMATES = "ml.policy_estimates"
BANDIT_FEEDBACK = "marts.bandit_feedback"
RECOMMENDATIONS = "serving.recommendations_current"
PUBLISH_LOG = "serving.publish_log"
PROFILES = "ml.user_interest_profiles"
INTERACTION_EVENTS = "marts.interaction_events"
ITEM_FEATURES = "marts.item_features"
STAGING_EVENTS = "staging.stg_shop__events"
REVIEW_SENTIMENT = "ml.review_sentiment"
REVIEW_ASPECTS = "ml.review_aspects"
CONTRACT_TABLES = (
    MODEL_VERSIONS,
    CHAMPIONS,
    GATE_DECISIONS,
    GATE_RUNS,
    QUARANTINE,
    INGEST_BATCHES,
    POLICY_ESTIMATES,
    BANDIT_FEEDBACK,
    RECOMMENDATIONS,
    PUBLISH_LOG,
    PROFILES,
    INTERACTION_EVENTS,
    ITEM_FEATURES,
)

# --- columns ------------------------------------------------------------------------------------
USER_ID = "user_id"
ITEM_ID = "item_id"
IS_EXPLORATION = "is_exploration"
PROPENSITY = "propensity"
POLICY = "policy"
REC_COLUMNS = (
    "rank",
    "item_id",
    "score",
    "reason",
    "reason_tag",
    "policy",
    "propensity",
    "is_exploration",
    "cold_start",
    "model_version",
    "recommendation_id",
    "run_id",
)
ITEM_COLUMNS = ("title", "category_path", "brand", "price")
# the profile table's columns (ml.tagging.store) but the user id, which the view is keyed by
PROFILE_COLUMNS = tuple(c for c in TAGGING_PROFILE_COLUMNS if c != "user_id")
FEEDBACK_TIME_COLUMNS = ("shown_at", "event_at", "served_at", "logged_at", "event_time", "day")
FEEDBACK_CLICK_COLUMNS = ("clicked", "click", "reward")

# --- model families -----------------------------------------------------------------------------
FAMILIES = (RECOMMENDER_FAMILY, "tagger", "policy")
# modules that may declare a family's PRIMARY_METRIC / GUARD_METRICS (import-light defaults)
FAMILY_DEFAULTS = {"tagger": "ml.tagging.defaults", "policy": "ml.explore.defaults"}
GUARD_METRICS: dict[str, tuple[str, ...]] = {RECOMMENDER_FAMILY: ("coverage@10", "novelty@10")}
BOOKKEEPING_METRICS = frozenset({"eval_users", "fit_seconds", "train_seconds", "n", "n_users", "n_items"})
BUDGET_PARAMS = ("budget", "exploration_budget", "epsilon")
GATE_DETAIL_KEYS = ("rows", "warnings", "skipped")

USER_ID_RULE = C.ID_RULE  # the landing contract's id rule: an id ingest accepts, the UI can look up
USER_ID_PATTERN = re.compile(C.ID_PATTERN)
PREFIX_PATTERN = re.compile(r"^[A-Za-z0-9_.:@-]{0,64}$")
FAMILY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
DOCS_SUFFIXES = frozenset({".html", ".htm", ".css", ".js", ".png", ".jpg", ".jpeg", ".svg", ".ico", ".woff", ".woff2"})
Z_95 = 1.959963984540054


# --- small helpers ------------------------------------------------------------------------------
def jsonable(value: Any) -> Any:
    """A JSON-safe copy of one cell: timestamps as ISO strings, NaN/NaT/NA as None, numpy as Python."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, datetime):  # pd.Timestamp too; the warehouse stores naive times as UTC
        if pd.isna(value):
            return None
        return (value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as JSON-safe dicts."""
    cols = [str(c) for c in df.columns]
    return [{c: jsonable(v) for c, v in zip(cols, row, strict=True)} for row in df.itertuples(index=False)]


def parse_json(text: Any) -> Any:
    """A JSON column's value parsed; a non-JSON string is returned as is, empty as None."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return None
    if not isinstance(text, str):
        return jsonable(text)
    try:
        return json.loads(text)
    except ValueError:
        return text


def unavailable(table: str, what: str) -> dict[str, Any]:
    return {"available": False, "message": f"{what} not available yet: table {table} does not exist"}


def wilson(successes: int, trials: int, z: float = Z_95) -> tuple[float | None, float | None]:
    """Wilson score interval of a binomial rate (95 % by default); (None, None) without trials."""
    if trials <= 0:
        return None, None
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    # the exact interval always contains p; clamp away rounding at p = 0 or 1
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def bounded(name: str, value: int, low: int, high: int) -> int:
    if not low <= int(value) <= high:
        raise BadInput(f"{name} must be between {low} and {high}, got {value}")
    return int(value)


def validate_user_id(user_id: str) -> str:
    """Return ``user_id`` if it follows :data:`USER_ID_RULE`, else raise :class:`BadInput`."""
    if not isinstance(user_id, str) or not USER_ID_PATTERN.fullmatch(user_id):
        shown = user_id[:80] if isinstance(user_id, str) else type(user_id).__name__
        raise BadInput(f"invalid user id {shown!r}: expected {USER_ID_RULE}")
    return user_id


def _selected(rs: ReadSession, table: str, wanted: Iterable[str], alias: str = "") -> list[str]:
    """``alias.col`` for every wanted column the table has (column names come from the catalogue)."""
    present = rs.catalog.cols(table)
    return [f"{alias}{c}" for c in wanted if c in present]


def _default_attr(family: str, attr: str) -> Any:
    module = FAMILY_DEFAULTS.get(family)
    if not module:
        return None
    try:
        return getattr(importlib.import_module(module), attr, None)
    except ImportError:
        return None


def primary_metric(family: str, names: Sequence[str]) -> str | None:
    """The family's primary metric: its declared one when recorded, else the first recorded metric."""
    declared = RECOMMENDER_PRIMARY if family == RECOMMENDER_FAMILY else _default_attr(family, "PRIMARY_METRIC")
    if declared and declared in names:
        return str(declared)
    usable = [n for n in names if n not in BOOKKEEPING_METRICS]
    return usable[0] if usable else None


def guard_metrics(family: str, names: Sequence[str], primary: str | None) -> list[str]:
    """The family's guard metrics that were recorded (declared ones, else up to two others)."""
    declared = GUARD_METRICS.get(family) or tuple(_default_attr(family, "GUARD_METRICS") or ())
    found = [m for m in declared if m in names]
    if found:
        return found
    return [n for n in names if n != primary and n not in BOOKKEEPING_METRICS][:2]


# --- sections -----------------------------------------------------------------------------------
def status(rs: ReadSession) -> dict[str, Any]:
    """Which contract tables exist, and where the rows come from."""
    return {
        "source": rs.freshness.as_dict(),
        "tables": {t: rs.has(t) for t in CONTRACT_TABLES},
    }


def models(rs: ReadSession, family: str | None = None, limit: int = 200) -> dict[str, Any]:
    """Champion and challengers per model family over time, with every gate decision.

    Per family: ``versions`` (oldest first, each with its metrics dict, ``is_champion`` for the
    current champion and ``was_champion`` for any past one), ``champions`` (promotion history),
    ``decisions`` (newest first), ``primary_metric`` and ``guard_metrics`` (names in the metrics).
    """
    limit = bounded("limit", limit, 1, 5000)
    if family is not None and not FAMILY_PATTERN.fullmatch(family):
        raise BadInput(f"invalid family {family[:40]!r}: lower-case letters, digits and _")
    if not rs.has(MODEL_VERSIONS):
        return unavailable(MODEL_VERSIONS, "the model registry")
    versions, champions, decisions = _registry_rows(rs, family, limit)
    seen = [str(f) for f in versions["family"].tolist()]
    names = [family] if family else [*FAMILIES, *sorted(set(seen) - set(FAMILIES))]
    out = [
        _family_section(
            fam,
            versions[versions["family"] == fam].iloc[::-1],
            champions[champions["family"] == fam],
            decisions[decisions["family"] == fam],
        )
        for fam in names
    ]
    return {"available": True, "source": rs.freshness.as_dict(), "families": out}


def _registry_rows(rs: ReadSession, family: str | None, limit: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The registry's versions (newest first), champion promotions (oldest first) and gate
    decisions (newest first), of ``family`` or of every family; empty frames for missing tables."""
    where, params = ("where family = ?", [family]) if family else ("", [])
    versions = rs.query(
        "select version_id, family, model_name, params, metrics, run_id, created_at "
        f"from {MODEL_VERSIONS} {where} order by created_at desc, version_id limit ?",
        [*params, limit],
    )
    champions = (
        rs.query(
            f"select family, version_id, promoted_at, reason, actor from {CHAMPIONS} {where} order by promoted_at",
            params,
        )
        if rs.has(CHAMPIONS)
        else pd.DataFrame(columns=["family", "version_id", "promoted_at", "reason", "actor"])
    )
    decisions = (
        rs.query(
            "select decided_at, family, run_id, challenger_version, champion_version, promoted, reason, details "
            f"from {GATE_DECISIONS} {where} order by decided_at desc limit ?",
            [*params, limit],
        )
        if rs.has(GATE_DECISIONS)
        else pd.DataFrame(columns=["decided_at", "family", "promoted"])
    )
    return versions, champions, decisions


def _family_section(fam: str, vs: pd.DataFrame, ch: pd.DataFrame, ds: pd.DataFrame) -> dict[str, Any]:
    """One family's part of :func:`models` from its versions (oldest first), champion
    promotions and gate decisions."""
    current = str(ch["version_id"].iloc[-1]) if len(ch) else None
    ever = set(ch["version_id"].astype(str))
    rows = []
    counts: Counter[str] = Counter()
    for r in vs.itertuples(index=False):
        metrics = parse_json(r.metrics)
        metrics = {
            str(k): float(v)
            for k, v in (metrics or {}).items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))
        }
        counts.update(metrics)
        rows.append(
            {
                "version_id": str(r.version_id),
                "model_name": str(r.model_name),
                "run_id": jsonable(r.run_id),
                "created_at": jsonable(r.created_at),
                "params": parse_json(r.params),
                "metrics": metrics,
                "is_champion": str(r.version_id) == current,
                "was_champion": str(r.version_id) in ever,
            }
        )
    found = sorted(counts)
    primary = primary_metric(fam, found)
    guards = guard_metrics(fam, found, primary)
    metric_names = [m for m in (primary, *guards) if m] + [m for m in found if m != primary and m not in guards]
    return {
        "family": fam,
        "available": bool(rows),
        "message": "" if rows else f"no {fam} versions registered yet",
        "primary_metric": primary,
        "guard_metrics": guards,
        "metric_names": metric_names,
        "champion": next((v for v in rows if v["is_champion"]), None),
        "champions": records(ch.drop(columns=["family"])),
        "versions": rows,
        "decisions": [
            {**{k: jsonable(v) for k, v in d.items() if k != "details"}, "details": parse_json(d.get("details"))}
            for d in ds.drop(columns=["family"]).to_dict("records")
        ],
    }


def data_docs_url(path: Any) -> str | None:
    """A link the page can open for a Data Docs path: http(s) URLs as is; files under
    :func:`docs_root` as ``data-docs/<relative path>`` (served by the plugin); anything else None."""
    if not path or not isinstance(path, str):
        return None
    if path.startswith(("http://", "https://")):
        return path
    rel = docs_relative(path)
    return f"data-docs/{rel}" if rel is not None else None


def docs_root() -> Path:
    """The folder ``data-docs/`` serves: ``$INTERESTFLOW_DATA_DOCS`` when set (where the quality
    gates then write their Data Docs), else the state folder."""
    from ml.settings import settings

    s = settings()
    return Path(s.data_docs or s.home).resolve()


def docs_relative(path: str) -> str | None:
    p = Path(path.removeprefix("file://"))
    root = docs_root()
    try:
        rel = p.resolve().relative_to(root)
    except (ValueError, OSError):
        return None
    return rel.as_posix()


def data_docs_file(rel_path: str) -> Path:
    """The file for ``data-docs/<rel_path>``: inside :func:`docs_root`, a static web file type."""
    root = docs_root()
    target = (root / rel_path).resolve()
    if not target.is_relative_to(root) or target.suffix.lower() not in DOCS_SUFFIXES:
        raise BadInput(f"not a Data Docs file: {rel_path[:120]!r}")
    if not target.is_file():
        raise FileNotFoundError(f"no Data Docs file {rel_path[:120]!r}")
    return target


def quality(rs: ReadSession, limit: int = 10) -> dict[str, Any]:
    """The last ``limit`` runs of every data-quality gate, quarantine reason counts and recent
    ingest batches."""
    limit = bounded("limit", limit, 1, 200)
    out: dict[str, Any] = {"available": True, "source": rs.freshness.as_dict()}
    if rs.has(GATE_RUNS, "gate", "run_id", "checked_at", "passed"):
        wanted = ("n_expectations", "n_failed", "failures", "data_docs_path", "details")
        extra = ", ".join(_selected(rs, GATE_RUNS, wanted))
        df = rs.query(
            f"select * from (select gate, run_id, checked_at, passed{', ' + extra if extra else ''}, "
            "row_number() over (partition by gate order by checked_at desc) as rn "
            f"from {GATE_RUNS}) as t where rn <= ? order by gate, checked_at desc",
            [limit],
        )
        gates: dict[str, list[dict[str, Any]]] = {}
        for r in df.drop(columns=["rn"]).to_dict("records"):
            row = {k: jsonable(v) for k, v in r.items() if k not in ("failures", "details")}
            row["passed"] = bool(r["passed"]) if r["passed"] is not None else None
            row["failures"] = parse_json(r.get("failures")) or []
            details = parse_json(r.get("details"))
            # the profile the gate stores for its next run can be large; the page needs only these
            row["details"] = (
                {k: details[k] for k in GATE_DETAIL_KEYS if k in details} if isinstance(details, dict) else details
            )
            row["data_docs_url"] = data_docs_url(r.get("data_docs_path"))
            gates.setdefault(str(r["gate"]), []).append(row)
        out["gates"] = {
            "available": True,
            "gates": [
                {
                    "gate": g,
                    "last_passed": runs[0]["passed"],
                    "runs": runs,
                }
                for g, runs in gates.items()
            ],
        }
    else:
        out["gates"] = unavailable(GATE_RUNS, "gate runs")
    if rs.has(QUARANTINE, "reason"):
        table_col = "table_name" if rs.has(QUARANTINE, "table_name") else "'?'"
        q = rs.query(
            f"select {table_col} as table_name, reason, count(*) as n from {QUARANTINE} "
            "group by 1, 2 order by n desc, 1, 2"
        )
        out["quarantine"] = {"available": True, "total": int(q["n"].sum()) if len(q) else 0, "reasons": records(q)}
    else:
        out["quarantine"] = unavailable(QUARANTINE, "the quarantine")
    if rs.has(INGEST_BATCHES, "batch_id", "ingested_at"):
        cols = _selected(
            rs,
            INGEST_BATCHES,
            (
                "batch_id",
                "file",
                "table_name",
                "rows_total",
                "accepted",
                "quarantined",
                "reasons",
                "status",
                "ingested_at",
            ),
        )
        b = rs.query(f"select {', '.join(cols)} from {INGEST_BATCHES} order by ingested_at desc limit ?", [limit])
        rows = records(b)
        for r in rows:
            if "reasons" in r:
                r["reasons"] = parse_json(r["reasons"])
        out["batches"] = {"available": True, "batches": rows}
    else:
        out["batches"] = unavailable(INGEST_BATCHES, "the ingest batch log")
    return out


def campaigns(rs: ReadSession) -> dict[str, Any]:
    """Every campaign window (``ml/marketing/campaigns/``) with its latest report from
    ``ml.campaign_reports``: per metric the uplift per exposed user with its 95 % interval, and
    the ROAS on the campaign's spend; and per audience its latest marketing copy (``copy``)."""
    from ml.marketing.campaigns import load_campaigns
    from ml.marketing.report import REPORTS, RETURN_COLUMNS, UPLIFT_COLUMNS

    specs = [
        {
            "campaign": c.name,
            "description": c.description,
            "start": jsonable(c.start),
            "end": jsonable(c.end),
            "holdout_share": c.holdout_share,
            "spend": c.spend,
            "discount_percent": c.discount_percent,
            "copy_variants": c.copy_variants,
        }
        for c in load_campaigns().values()
    ]
    out: dict[str, Any] = {"available": True, "source": rs.freshness.as_dict(), "campaigns": specs}
    copy = _copy(rs)
    for spec in specs:
        spec["copy"] = (copy or {}).get(spec["campaign"], [])
    if copy is None:
        out["copy"] = unavailable("ml.copy_candidates", "marketing copy (publish_audiences' generate_copy task)")
    else:
        out["copy"] = {"available": True, "campaigns": sorted(copy)}
    if not rs.has(REPORTS, "campaign", "run_id", "reported_at", "metric"):
        out["reports"] = unavailable(REPORTS, "campaign reports (publish_audiences' report_campaigns task)")
        return out
    df = rs.query(
        f"select * from {REPORTS} r where reported_at = "
        f"(select max(reported_at) from {REPORTS} l where l.campaign = r.campaign) "
        f"order by campaign, {'copy_variant, ' if rs.has(REPORTS, 'copy_variant') else ''}metric"
    )
    latest: dict[str, dict[str, Any]] = {}
    for r in records(df):
        entry = latest.setdefault(str(r["campaign"]), {"reported_at": r["reported_at"], "run_id": r["run_id"]})
        row = {k: r.get(k) for k in (*UPLIFT_COLUMNS, *RETURN_COLUMNS)}
        if r.get("copy_variant") is None:  # the whole treatment arm against the holdout
            entry.setdefault("metrics", []).append(row)
        else:
            entry.setdefault("variants", []).append({"copy_variant": r["copy_variant"], **row})
    for spec in specs:
        spec["report"] = latest.get(spec["campaign"])
    out["reports"] = {"available": True, "reported": sorted(latest)}
    return out


def _copy(rs: ReadSession) -> dict[str, list[dict[str, Any]]] | None:
    """Per campaign, each audience's latest marketing copy run (``ml.copy_candidates``): the
    gate's pass rate and reasons, and the variants it published. None when none was written."""
    from ml.marketing.copywriting.publish import CANDIDATES, LATEST_CANDIDATES_SQL, gate_summary

    if not rs.has(CANDIDATES, "run_id", "audience", "campaign", "written_at", "passed", "published", "reasons"):
        return None
    df = rs.query(LATEST_CANDIDATES_SQL)
    out: dict[str, list[dict[str, Any]]] = {}
    for (campaign, audience), rows in df.groupby(["campaign", "audience"], sort=True):
        published = rows[rows["published"].astype(bool)]
        out.setdefault(str(campaign), []).append(
            {
                "audience": audience,
                "run_id": rows["run_id"].iloc[0],
                "written_at": jsonable(rows["written_at"].iloc[0]),
                "model": rows["model"].iloc[0],
                **gate_summary(rows),
                "variants": records(published[["variant", "item_id", "source", "text"]]),
            }
        )
    return out


def _policy_champion(rs: ReadSession) -> dict[str, Any] | None:
    if not (rs.has(CHAMPIONS) and rs.has(MODEL_VERSIONS)):
        return None
    df = rs.query(
        "select c.version_id, c.promoted_at, c.reason, v.model_name, v.params "
        f"from {CHAMPIONS} as c join {MODEL_VERSIONS} as v on v.version_id = c.version_id "
        "where c.family = ? order by c.promoted_at desc limit 1",
        ["policy"],
    )
    if df.empty:
        return None
    row = {k: jsonable(v) for k, v in df.iloc[0].to_dict().items()}
    row["params"] = parse_json(df["params"].iloc[0])
    return row


def _budget(champion: dict[str, Any] | None) -> dict[str, Any]:
    params = (champion or {}).get("params") or {}
    if champion and isinstance(params, dict):
        for key in BUDGET_PARAMS:
            if key in params:
                return {
                    "value": jsonable(params[key]),
                    "param": key,
                    "from": f"policy champion {champion['version_id']}",
                }
    try:
        default = getattr(importlib.import_module("ml.explore.defaults"), "DEFAULT_EXPLORATION_BUDGET", None)
    except ImportError:
        default = None
    if default is not None:
        return {"value": jsonable(default), "param": "budget", "from": "platform default (no policy champion yet)"}
    return {"value": None, "param": None, "from": "not configured"}


def _ctr_rows(df: pd.DataFrame, days: int) -> list[dict[str, Any]]:
    """Per-day, per-arm impressions, clicks, CTR with a Wilson 95 % interval, last ``days`` days."""
    if df.empty:
        return []
    df = df.copy()
    df["day"] = pd.to_datetime(df["day"]).dt.date
    last = max(df["day"])
    df = df[df["day"] > last - pd.Timedelta(days=days)]
    rows = []
    for r in df.sort_values(["day", "arm"]).itertuples(index=False):
        n, c = int(r.impressions), int(r.clicks)
        lo, hi = wilson(c, n)
        rows.append(
            {"day": r.day.isoformat(), "arm": str(r.arm), "impressions": n, "clicks": c, "ctr": c / n if n else None}
            | {"ci_low": lo, "ci_high": hi}
        )
    return rows


def _share_rows(ctr: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per day: the share of labelled impressions that were exploration slots."""
    by_day: dict[str, dict[str, int]] = {}
    for r in ctr:
        by_day.setdefault(r["day"], {}).setdefault(r["arm"], 0)
        by_day[r["day"]][r["arm"]] += r["impressions"]
    out = []
    for day, arms in sorted(by_day.items()):
        labelled = arms.get("exploration", 0) + arms.get("exploitation", 0)
        if labelled:
            out.append({"day": day, "share": arms.get("exploration", 0) / labelled, "impressions": labelled})
    return out


def exploration(rs: ReadSession, days: int = 90) -> dict[str, Any]:
    """The serving policy and exploration budget, OPE estimates with confidence intervals, and
    exploration vs exploitation click-through (and exploration share) per day."""
    days = bounded("days", days, 1, 3650)
    out: dict[str, Any] = {"available": True, "source": rs.freshness.as_dict()}
    champion = _policy_champion(rs)
    serving: list[dict[str, Any]] = []
    if rs.has(RECOMMENDATIONS, POLICY, IS_EXPLORATION, PROPENSITY):
        s = rs.query(
            f"select {POLICY} as policy, count(*) as slots, count(distinct {USER_ID}) as users, "
            f"sum(case when {IS_EXPLORATION} then 1 else 0 end) as exploration_slots, "
            f"avg({PROPENSITY}) as mean_propensity, min({PROPENSITY}) as min_propensity "
            f"from {RECOMMENDATIONS} group by {POLICY} order by slots desc"
        )
        serving = records(s)
        for r in serving:
            r["slots"] = int(r["slots"] or 0)
            r["exploration_slots"] = int(r["exploration_slots"] or 0)
            r["exploration_share"] = r["exploration_slots"] / r["slots"] if r["slots"] else None
    current_policy = serving[0]["policy"] if serving else (champion or {}).get("model_name")
    out["policy"] = {
        "current": current_policy,
        "champion": champion,
        "serving": serving,
        "budget": _budget(champion),
        "message": "" if serving else f"{RECOMMENDATIONS} has no policy columns yet",
    }
    if rs.has(POLICY_ESTIMATES, "policy", "estimator", "estimate"):
        cols = _selected(rs, POLICY_ESTIMATES, EXPLORE_COLUMNS.POLICY_ESTIMATE_COLUMNS)
        # the newest 5,000 rows, oldest first; "current" is the latest evaluation run's estimates
        # of every policy (``is_current`` marks, per run, the policy that served then)
        order = "evaluated_at" if "evaluated_at" in cols else "policy"
        est = rs.query(f"select {', '.join(cols)} from {POLICY_ESTIMATES} order by {order} desc limit 5000")
        est = est.iloc[::-1].reset_index(drop=True)
        cur = est[est["evaluated_at"] == est["evaluated_at"].max()] if "evaluated_at" in est.columns else est
        current_rows = records(cur.sort_values(["estimator", "policy"]))
        for r in current_rows:
            r["is_serving"] = r["policy"] == current_policy
        out["estimates"] = {"available": True, "current": current_rows, "history": records(est)}
    else:
        out["estimates"] = unavailable(POLICY_ESTIMATES, "off-policy estimates")
    out["ctr"] = _ctr(rs, days)
    return out


def _ctr(rs: ReadSession, days: int) -> dict[str, Any]:
    t = rs.catalog.first(BANDIT_FEEDBACK, FEEDBACK_TIME_COLUMNS)
    c = rs.catalog.first(BANDIT_FEEDBACK, FEEDBACK_CLICK_COLUMNS)
    if t and c and rs.has(BANDIT_FEEDBACK, IS_EXPLORATION):
        clicked = c if rs.catalog.is_boolean(BANDIT_FEEDBACK, c) else f"{c} > 0"
        explored = IS_EXPLORATION if rs.catalog.is_boolean(BANDIT_FEEDBACK, IS_EXPLORATION) else f"{IS_EXPLORATION} = 1"
        df = rs.query(
            f"select cast({t} as date) as day, case when {IS_EXPLORATION} is null then 'unlabelled' "
            f"when {explored} then 'exploration' else 'exploitation' end as arm, "
            f"count(*) as impressions, sum(case when {clicked} then 1 else 0 end) as clicks "
            f"from {BANDIT_FEEDBACK} group by 1, 2 order by 1, 2"
        )
        note = f"from {BANDIT_FEEDBACK} (clicks: {c} > 0)"
    elif rs.has(RAW_EVENTS, "event_type", "recommendation_id", "position", "event_time") and rs.has(
        RECOMMENDATIONS, "recommendation_id", "rank", IS_EXPLORATION
    ):
        df = rs.query(
            "with shown as ("
            f"  select r.recommendation_id, r.rank, r.{IS_EXPLORATION} as x, cast(e.event_time as date) as day "
            f"  from {RAW_EVENTS} as e join {RECOMMENDATIONS} as r "
            "    on e.recommendation_id = r.recommendation_id and e.position = r.rank "
            "  where e.event_type = ?), "
            f"clicked as (select distinct recommendation_id, position from {RAW_EVENTS} where event_type = ?) "
            "select s.day, case when s.x then 'exploration' else 'exploitation' end as arm, "
            "count(*) as impressions, sum(case when c.recommendation_id is null then 0 else 1 end) as clicks "
            "from shown as s left join clicked as c "
            "  on c.recommendation_id = s.recommendation_id and c.position = s.rank "
            "group by 1, 2 order by 1, 2",
            ["impression", "click"],
        )
        note = f"from {RAW_EVENTS} impressions and clicks matched to {RECOMMENDATIONS} by recommendation_id and slot"
    else:
        return unavailable(BANDIT_FEEDBACK, "exploration feedback")
    rows = _ctr_rows(df, days)
    share = _share_rows(rows)
    return {
        "available": True,
        "note": note,
        "days": rows,
        "share": share,
        "message": "" if rows else "no impressions of published slates logged yet",
        "share_message": "" if share else "no impressions labelled exploration or exploitation yet",
    }


def user(rs: ReadSession, user_id: str, k: int = 10, recent: int = 20) -> dict[str, Any]:
    """One user at a glance: interest profile (known vs candidate tags), recent behaviour and the
    current top-k with reason, exploration flag and propensity. Raises :class:`NoSuchUser`."""
    user_id = validate_user_id(user_id)
    k = bounded("k", k, 1, 100)
    recent = bounded("recent", recent, 1, 500)
    # the first table that knows the user (cheapest first; raw.events last, it is the biggest)
    found_in = next(
        (
            t
            for t in (RECOMMENDATIONS, PROFILES, RAW_USERS, INTERACTION_EVENTS, RAW_EVENTS)
            if rs.has(t, USER_ID) and len(rs.query(f"select 1 as x from {t} where {USER_ID} = ? limit 1", [user_id]))
        ),
        None,
    )
    if found_in is None:
        raise NoSuchUser(user_id)
    return {
        "available": True,
        "source": rs.freshness.as_dict(),
        "user_id": user_id,
        "found_in": found_in,
        "profile": _profile(rs, user_id),
        "behaviour": _behaviour(rs, user_id, recent),
        "recommendations": _recommendations(rs, user_id, k),
        "reviews": _reviews(rs, user_id, recent),
    }


def _reviews(rs: ReadSession, user_id: str, recent: int) -> dict[str, Any]:
    """The user's latest reviews with the review model's reading (``ml.review_sentiment``) and,
    per review, its sentences' aspects and their tone (``ml.review_aspects``)."""
    if not rs.has(REVIEW_SENTIMENT, USER_ID, "item_id", "reviewed_at", "label", "sentiment"):
        return unavailable(REVIEW_SENTIMENT, "review sentiment")
    cols = _selected(rs, REVIEW_SENTIMENT, ("reviewed_at", "item_id", "rating", "label", "sentiment"), "r.")
    joins, extra = [], []
    if rs.has(ITEM_FEATURES, ITEM_ID, "title"):
        joins.append(f"left join {ITEM_FEATURES} as i on i.item_id = r.item_id")
        extra.append("i.title")
    if rs.has(STAGING_EVENTS, "event_id", "review_text"):
        joins.append(f"left join {STAGING_EVENTS} as e on e.event_id = r.event_id")
        extra.append("e.review_text")
    df = rs.query(
        f"select r.event_id, {', '.join(cols + extra)} from {REVIEW_SENTIMENT} as r {' '.join(joins)} "
        f"where r.{USER_ID} = ? order by r.reviewed_at desc limit ?",
        [user_id, recent],
    )
    items = records(df)
    if items and rs.has(REVIEW_ASPECTS, "event_id", "aspect", "sentiment"):
        ids = [r["event_id"] for r in items]
        aspects = rs.query(
            f"select event_id, aspect, sentiment from {REVIEW_ASPECTS} "
            f"where event_id in ({', '.join('?' * len(ids))}) order by event_id, aspect",
            ids,
        )
        by_review: dict[str, list[dict[str, Any]]] = {}
        for a in records(aspects):
            by_review.setdefault(a["event_id"], []).append({"aspect": a["aspect"], "sentiment": a["sentiment"]})
        for r in items:
            r["aspects"] = by_review.get(r["event_id"], [])
    return {"available": True, "items": items}


def _profile(rs: ReadSession, user_id: str) -> dict[str, Any]:
    if not rs.has(PROFILES, USER_ID, "tag", "weight", "status"):
        return unavailable(PROFILES, "interest profiles")
    cols = _selected(rs, PROFILES, PROFILE_COLUMNS)
    latest = f"and as_of = (select max(as_of) from {PROFILES} where {USER_ID} = ?)" if "as_of" in cols else ""
    params = [user_id, user_id] if latest else [user_id]
    df = rs.query(
        f"select {', '.join(cols)} from {PROFILES} where {USER_ID} = ? {latest} order by weight desc, tag", params
    )
    rows = records(df)
    known = [r for r in rows if r["status"] == "known"]
    candidate = [r for r in rows if r["status"] != "known"]
    return {
        "available": True,
        "as_of": rows[0].get("as_of") if rows else None,
        "known": known,
        "candidate": candidate,
        "message": "" if rows else "no interest profile for this user yet",
    }


def _behaviour(rs: ReadSession, user_id: str, recent: int) -> dict[str, Any]:
    if rs.has(INTERACTION_EVENTS, USER_ID, "event_at", "event_type"):
        table, time_col = INTERACTION_EVENTS, "event_at"
    elif rs.has(STAGING_EVENTS, USER_ID, "event_at", "event_type"):
        table, time_col = STAGING_EVENTS, "event_at"
    else:
        return unavailable(INTERACTION_EVENTS, "recent behaviour")
    cols = _selected(rs, table, ("event_id", "event_at", "event_type", "item_id", "weight", "query"), "e.")
    join, item_cols = "", []
    if rs.has(ITEM_FEATURES, ITEM_ID) and rs.has(table, ITEM_ID):
        item_cols = _selected(rs, ITEM_FEATURES, ("title", "category_path"), "i.")
        join = f"left join {ITEM_FEATURES} as i on i.item_id = e.item_id"
    events = rs.query(
        f"select {', '.join(cols + item_cols)} from {table} as e {join} "
        f"where e.{USER_ID} = ? order by e.{time_col} desc limit ?",
        [user_id, recent],
    )
    counts = rs.query(
        f"select event_type, count(*) as n, min({time_col}) as first_at, max({time_col}) as last_at "
        f"from {table} where {USER_ID} = ? group by event_type order by n desc",
        [user_id],
    )
    return {"available": True, "table": table, "recent": records(events), "counts": records(counts)}


def _recommendations(rs: ReadSession, user_id: str, k: int) -> dict[str, Any]:
    if not rs.has(RECOMMENDATIONS, USER_ID, "rank", ITEM_ID):
        return unavailable(RECOMMENDATIONS, "published recommendations")
    cols = _selected(rs, RECOMMENDATIONS, REC_COLUMNS, "r.")
    join, item_cols = "", []
    if rs.has(ITEM_FEATURES, ITEM_ID):
        item_cols = _selected(rs, ITEM_FEATURES, ITEM_COLUMNS, "i.")
        join = f"left join {ITEM_FEATURES} as i on i.item_id = r.item_id"
    df = rs.query(
        f"select {', '.join(cols + item_cols)} from {RECOMMENDATIONS} as r {join} "
        f"where r.{USER_ID} = ? order by r.rank limit ?",
        [user_id, k],
    )
    version = None
    if rs.has(PUBLISH_LOG, "name", "version", "created_at"):
        v = rs.query(
            f"select version, run_id, model_version, created_at from {PUBLISH_LOG} where name = ? "
            "order by created_at desc limit 1",
            ["recommendations"],
        )
        version = records(v)[0] if len(v) else None
    rows = records(df)
    return {
        "available": True,
        "published": version,
        "items": rows,
        "message": "" if rows else "this user has no published recommendations (not active in the last snapshot)",
    }


def users(rs: ReadSession, prefix: str = "", limit: int = 20) -> dict[str, Any]:
    """User ids starting with ``prefix`` (for the lookup box), from the first table that has users."""
    limit = bounded("limit", limit, 1, 200)
    if not PREFIX_PATTERN.fullmatch(prefix):
        raise BadInput(f"invalid prefix {prefix[:80]!r}: expected up to 64 of letters, digits and _ . : @ -")
    for table in (RECOMMENDATIONS, INTERACTION_EVENTS, RAW_USERS):
        if rs.has(table, USER_ID):
            df = rs.query(
                f"select distinct {USER_ID} from {table} where substr({USER_ID}, 1, ?) = ? order by {USER_ID} limit ?",
                [len(prefix), prefix, limit],
            )
            return {"available": True, "table": table, "users": [str(u) for u in df[USER_ID]]}
    return unavailable(RECOMMENDATIONS, "users")


# --- the shopping assistant ---------------------------------------------------------------------
_ASSISTANTS: dict[tuple[Any, ...], Any] = {}


def assistant(rs: ReadSession, user_id: str, question: Any, k: int = 5) -> dict[str, Any]:
    """The assistant's answer to ``question`` for ``user_id`` (``ml.assistant.service``). The
    loaded assistant is kept while the catalogue's embeddings are unchanged; a question it cannot
    read raises :class:`~ml.assistant.query.QuestionError` (its status: 400, 413 or 422)."""
    from ml.assistant.index import ITEM_EMBEDDINGS
    from ml.assistant.service import CHAMPION_SQL, Assistant

    user_id = validate_user_id(user_id)
    k = bounded("k", k, 1, 50)
    if not rs.has(ITEM_EMBEDDINGS, "item_id", "embedding"):
        return unavailable(ITEM_EMBEDDINGS, "item embeddings (run build_features)")
    state = rs.query(f"select count(*) as n, max(embedded_at) as at from {ITEM_EMBEDDINGS}")
    champion = rs.query(CHAMPION_SQL) if rs.has("registry.champions") else None
    # a new catalogue embedding or a new champion loads the assistant again
    version = None if champion is None or champion.empty else str(champion["version_id"].iloc[0])
    key = (int(state["n"].iloc[0]), str(state["at"].iloc[0]), version)
    if key not in _ASSISTANTS:
        _ASSISTANTS.clear()
        _ASSISTANTS[key] = Assistant(rs)
    # the kept assistant reads the user's history through this request's session (the session
    # it was loaded with is closed by now)
    answer = _ASSISTANTS[key].ask(user_id, question, k, source=rs)
    return {"available": True, "source": rs.freshness.as_dict(), **answer.as_dict()}
