"""Task functions of the publish_audiences DAG: materialise audiences as versioned tables."""

from __future__ import annotations

import json
import logging
from typing import Any

import pandas as pd

from ml import columns as C
from ml.features.interactions import newest_event
from ml.warehouse import Warehouse

log = logging.getLogger(__name__)


def _has_column(wh: Warehouse, con: Any, schema: str, table: str, column: str) -> bool:
    return column in wh.table_columns(con, schema, table)


def _read_optional(wh: Warehouse, con: Any, schema: str, table: str, sql: str) -> pd.DataFrame | None:
    return wh.query(sql, None, con) if wh.table_exists(con, schema, table) else None


# each user's latest scored review's label (ml.reviews.score), what exclude_negative_reviewers reads
LATEST_REVIEW_SQL = """
    select user_id, label as latest_review from (
        select user_id, label, row_number() over (partition by user_id order by reviewed_at desc, event_id desc) as n
        from ml.review_sentiment
    ) as r where n = 1"""


def load_audience_inputs(wh: Warehouse) -> dict[str, Any]:
    """Profiles (ML profiles when published, else the dbt mart), users with consent and spend
    (``marts.user_features``; a mart without the consent column is an error, never "nobody
    opted out"), segments, recent purchases, and the as-of time (newest event)."""
    with wh.connect(read_only=True) as con:
        profiles = None
        views = wh.query(
            "select count(*) as n from information_schema.tables where table_schema = 'ml' "
            "and table_name = 'user_interest_profiles_current'",
            None,
            con,
        )
        if int(views["n"].iloc[0]):
            profiles = wh.query(
                "select user_id, tag, weight, evidence_count, last_seen, status from ml.user_interest_profiles_current",
                None,
                con,
            )
        if profiles is None or profiles.empty:
            profiles = wh.query(
                "select user_id, tag, weight, evidence_count, last_seen_at as last_seen, 'known' as status "
                "from marts.user_interest_profile",
                None,
                con,
            )
        if not _has_column(wh, con, "marts", "user_features", C.MARKETING_OPT_OUT):
            raise RuntimeError(
                "marts.user_features has no marketing_opt_out column: consent is unknown, so no audience "
                "can be published. Re-ingest and run build_features (dbt build) first."
            )
        users = wh.query(f"select user_id, {C.MARKETING_OPT_OUT}, monetary from marts.user_features", None, con)
        seg = _read_optional(wh, con, "ml", "user_segments", "select user_id, segment from ml.user_segments")
        latest = _read_optional(wh, con, "ml", "review_sentiment", LATEST_REVIEW_SQL)
        purchases = wh.query(
            "select user_id, event_at from marts.interaction_events where event_type = 'purchase'", None, con
        )
        as_of = newest_event(wh, con)
    if seg is not None:
        users = users.merge(seg, on="user_id", how="left")
    if latest is not None:
        users = users.merge(latest, on="user_id", how="left")
    return {"profiles": profiles, "users": users, "purchases": purchases, "as_of": as_of}


def publish_audiences(
    run_id: str = "manual",
    names: list[str] | None = None,
    extra_specs: list[dict[str, Any]] | None = None,
    keep_versions: int = 3,
    warehouse: str | None = None,
) -> dict[str, Any]:
    """Build every selected audience (repo YAML files plus specs given as Params), publish each
    atomically as ``serving.audience_<name>`` and return sizes, exclusions and overlaps."""
    from ml.marketing.audiences import AudienceSpec, build_audience, load_specs, overlap_report
    from ml.publish import publish_table

    wh = Warehouse.from_env(warehouse)
    specs = load_specs()
    if names:
        unknown = sorted(set(names) - set(specs))
        if unknown:
            raise ValueError(f"unknown audiences {unknown}; defined: {sorted(specs)}")
        specs = {n: specs[n] for n in names}
    for d in extra_specs or []:
        s = AudienceSpec.from_dict(d)
        specs[s.name] = s
    inputs = load_audience_inputs(wh)
    built: dict[str, pd.DataFrame] = {}
    report: dict[str, Any] = {"as_of": str(inputs["as_of"]), "audiences": {}}
    for name, spec in specs.items():
        res = build_audience(spec, inputs["profiles"], inputs["users"], inputs["purchases"], inputs["as_of"])
        df = res.members.assign(audience=name, run_id=run_id)
        pub = publish_table(
            df,
            f"audience_{name}",
            f"{run_id}|{name}",
            wh,
            keep=keep_versions,
            meta={"spec": json.loads(json.dumps(spec, default=lambda o: o.__dict__))},
        )
        built[name] = df
        report["audiences"][name] = {
            "size": len(df),
            "rule_members": int((df["source"] == "rule").sum()),
            "lookalikes": res.lookalike_added,
            "lookalike_threshold": res.lookalike_threshold,
            "excluded": res.excluded,
            "table": pub.table,
            "view": pub.view,
        }
    ov = overlap_report(built) if built else pd.DataFrame()
    report["overlap"] = ov[ov["audience"] < ov["other"]].to_dict("records") if len(ov) else []
    log.info("audiences: %s", json.dumps(report, default=str))
    return report


def report_campaigns(run_id: str = "manual", n_boot: int = 2000, warehouse: str | None = None) -> dict[str, Any]:
    """Report every campaign whose window has begun by the newest event (clicks, purchases and
    revenue uplift per user vs its holdout, ROAS on its spend) into ``ml.campaign_reports``.
    A campaign without exposed users in both arms yet is skipped, with the reason returned."""
    from ml.marketing.campaigns import load_campaigns
    from ml.marketing.report import campaign_report, per_user_outcomes, report_rows, write_reports

    wh = Warehouse.from_env(warehouse)
    as_of = pd.Timestamp(wh.query("select max(event_at) as t from staging.stg_shop__events")["t"].iloc[0])
    reported: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    frames = []
    for name, campaign in load_campaigns().items():
        if pd.isna(as_of) or pd.Timestamp(campaign.start) > as_of:
            skipped[name] = f"starts {campaign.start:%Y-%m-%d}, after the newest event"
            continue
        try:
            report = campaign_report(campaign, per_user_outcomes(wh, campaign), n_boot=n_boot)
        except ValueError as exc:  # no exposed users in one of the arms yet
            skipped[name] = str(exc)
            continue
        frames.append(report_rows(report, run_id))
        revenue = next(m for m in report["metrics"] if m["metric"] == "revenue")
        reported[name] = {"exposed_users": report["exposed_users"], "roas": revenue["roas"]}
    if frames:
        write_reports(wh, pd.concat(frames, ignore_index=True))
    for name, why in skipped.items():
        log.info("campaign %s not reported: %s", name, why)
    return {"reported": reported, "skipped": skipped}


def generate_copy(
    run_id: str = "manual",
    names: list[str] | None = None,
    model: str | None = None,
    banned_phrases: list[str] | None = None,
    attempts: int | None = None,
    lead_days: float | None = None,
    keep_versions: int = 3,
    lm_settings: dict[str, Any] | None = None,
    allowed_words: list[str] | None = None,
    warehouse: str | None = None,
) -> dict[str, Any]:
    """Copy variants per published audience x live campaign into ``serving.copy_<audience>``
    (``ml.marketing.copywriting.publish``); returns the gate's pass rate and reasons, overall
    and per audience. ``model``: a local folder with a causal LM (default the ``copy_model``
    setting, else the small model trained on the catalogue with ``lm_settings``);
    ``allowed_words``: words the gate's word rule accepts beyond the catalogue's and the
    dictionary's (a larger model's wider vocabulary)."""
    from ml.marketing import defaults
    from ml.marketing.audiences import load_specs
    from ml.marketing.campaigns import load_campaigns
    from ml.marketing.copywriting import publish as cp

    wh = Warehouse.from_env(warehouse)
    specs = load_specs()
    unknown = sorted(set(names or []) - set(specs))
    if unknown:
        raise ValueError(f"unknown audiences {unknown}; defined: {sorted(specs)}")
    as_of = newest_event(wh)
    lead = defaults.DEFAULT_COPY_LEAD_DAYS if lead_days is None else lead_days
    report = cp.publish_copy(
        wh,
        run_id,
        {n: [r.tag for r in s.tags] for n, s in specs.items() if not names or n in names},
        cp.live_campaigns(load_campaigns(), as_of, lead),
        cp.CopySettings(
            model=model,
            lm=lm_settings or {},
            banned=defaults.DEFAULT_BANNED_PHRASES if banned_phrases is None else banned_phrases,
            attempts=defaults.DEFAULT_COPY_ATTEMPTS if attempts is None else attempts,
            keep_versions=keep_versions,
            words=allowed_words or [],
        ),
    )
    report = {"as_of": str(as_of), "lead_days": lead, **report}
    log.info("copy: %s", json.dumps(report, default=str))
    return report
