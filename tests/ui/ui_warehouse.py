"""A small warehouse for the UI tests, written through the platform's own writers where they exist
(landing ingest, the model registry, the atomic publisher) and, for tables other parts of the
platform are still building, rows shaped exactly like the shared warehouse contract.

Everything is derived from a seed; ``build`` returns the inputs it wrote so tests compare what
the UI reads with what went in, not with hard-coded numbers.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.warehouse import Warehouse

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GATES = ("landing_events", "feature_marts")
POLICIES = ("greedy", "epsilon_greedy", "slot_allocator")
ESTIMATORS = ("ips", "snips")
SERVING_POLICY = "slot_allocator"


@dataclass
class Built:
    users: list[str]
    recommendations: pd.DataFrame
    profiles: pd.DataFrame
    gate_runs: pd.DataFrame
    estimates: pd.DataFrame
    feedback: pd.DataFrame
    versions: dict[str, list[str]] = field(default_factory=dict)
    champions: dict[str, str] = field(default_factory=dict)
    docs_file: Path | None = None


def write_landing(shop: Path, out: Path, n_users: int = 25, n_bad: int = 3) -> Path:
    """A landing batch cut from the tiny shop: ``n_users`` users' events plus ``n_bad`` events
    that break the contract (unknown item) so the quarantine has reasons."""
    out.mkdir(parents=True, exist_ok=True)
    items = pd.read_parquet(shop / "items.parquet")
    users = pd.read_parquet(shop / "users.parquet").sort_values("user_id").head(n_users)
    events = pd.read_parquet(shop / "events.parquet")
    events = events[events["user_id"].isin(users["user_id"])].copy()
    bad = events[events["item_id"].notna()].head(n_bad).copy()
    bad["event_id"] = [f"bad-{i}" for i in range(len(bad))]
    bad["item_id"] = "no-such-item"
    items.to_parquet(out / "items.parquet", index=False)
    users.to_parquet(out / "users.parquet", index=False)
    pd.concat([events, bad], ignore_index=True).to_parquet(out / "events.parquet", index=False)
    return out


def _create(wh: Warehouse, con: Any, table: str, ddl: str) -> None:
    wh.execute(con, f"drop table if exists {table}")
    wh.execute(con, f"create table {table} ({ddl})")


def build(wh: Warehouse, shop: Path, work: Path, docs_root: Path, seed: int = 7) -> Built:
    """Fill ``wh``; ``docs_root`` must be the state folder (Data Docs files are served from it)."""
    from ml.ingest.landing import ingest_paths
    from ml.publish import publish_table
    from ml.registry import ModelVersion, Registry

    rng = np.random.default_rng(seed)
    ingest_paths([write_landing(shop, work / "landing")], wh)
    with wh.connect() as con:
        wh.ensure_schemas(con)
        wh.execute(con, "create schema if not exists marts")
        # stand-ins for the dbt marts the page joins (the real ones come from dbt in the DAG tests)
        wh.execute(con, "drop table if exists marts.interaction_events")
        wh.execute(
            con,
            "create table marts.interaction_events as select event_id, user_id, item_id, event_type, "
            "event_time as event_at, cast(1.0 as double precision) as weight from raw.events "
            "where item_id is not null and event_type in ('view', 'click', 'add_to_cart', 'review', 'purchase')",
        )
        wh.execute(con, "drop table if exists marts.item_features")
        wh.execute(
            con,
            "create table marts.item_features as select item_id, title, category_path, brand, price from raw.items",
        )
        con.commit()
        users = sorted(str(u) for u in wh.query("select distinct user_id from raw.events", None, con)["user_id"])
        items = sorted(str(i) for i in wh.query("select item_id from raw.items", None, con)["item_id"])

    reg = Registry(wh)
    built = Built(users, pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame())
    families = {"recommender": (("popularity", "item_knn"), "ndcg@10"), "tagger": (("zero_shot",), "macro_f1")}
    for fam, (names, primary) in families.items():
        best: tuple[float, str] | None = None
        for run in range(3):
            for j, name in enumerate(names):
                value = round(0.1 + 0.05 * j + 0.02 * run + float(rng.uniform(0, 0.01)), 4)
                mv = ModelVersion(
                    family=fam,
                    model_name=name,
                    params={"run": run},
                    metrics={primary: value, "coverage@10": round(float(rng.uniform(0.2, 0.6)), 4), "eval_users": 20.0},
                    snapshot_id=f"snap-{run}",
                    artifact_path="",
                    artifact_bytes=0,
                    train_seconds=0.1,
                    run_id=f"{fam}-run-{run}",
                    created_at=T0 + timedelta(days=run, minutes=j),
                )
                reg.register(mv)
                built.versions.setdefault(fam, []).append(mv.version_id)
                if best is None or value > best[0]:
                    promoted = True
                    best = (value, mv.version_id)
                    reg.set_champion(fam, mv.version_id, f"{mv.version_id} {primary}={value}")
                else:
                    promoted = False
                reg.record_decision(fam, mv.run_id, mv.version_id, None, promoted, f"{name} run {run}", {"v": value})
        assert best is not None
        built.champions[fam] = best[1]

    k = 10
    rec_users = users[: max(1, len(users) - 3)]  # the last users have behaviour but no slate
    rows = []
    for u in rec_users:
        chosen = rng.choice(len(items), size=k, replace=False)
        for r, i in enumerate(chosen, start=1):
            explore = r > k - 2
            rows.append(
                {
                    "user_id": u,
                    "rank": r,
                    "item_id": items[int(i)],
                    "score": float(k - r) + float(rng.uniform(0, 0.5)),
                    "reason": f"similar to item {items[int(i) - 1]}" if not explore else "exploring a new interest",
                    "reason_tag": "item" if not explore else "tag:outdoor",
                    "model_version": built.champions["recommender"],
                    "policy": SERVING_POLICY,
                    "propensity": 1.0 if not explore else round(float(rng.uniform(0.05, 0.5)), 4),
                    "is_exploration": explore,
                    "recommendation_id": hashlib.sha1(f"ui-run|{u}".encode()).hexdigest()[:16],
                    "run_id": "ui-run",
                }
            )
    built.recommendations = pd.DataFrame(rows)
    publish_table(built.recommendations, "recommendations", "ui-run", wh, model_version=built.champions["recommender"])

    prof = []
    for u in users[:10]:
        for t, tag in enumerate(("shoes", "outdoor", "kitchen", "books")):
            known = t < 2
            prof.append(
                {
                    "user_id": u,
                    "tag": tag,
                    "weight": round(float(rng.uniform(0.1, 1.0)), 4),
                    "evidence_count": int(rng.integers(1, 30)) if known else 0,
                    "last_seen": T0 + timedelta(days=int(rng.integers(0, 5))),
                    "uncertainty": round(float(rng.uniform(0, 1)), 4),
                    "status": "known" if known else "candidate",
                    "candidate_reason": None if known else "co-occurs with shoes",
                    "tagger_version": built.champions["tagger"],
                    "as_of": T0 + timedelta(days=5),
                }
            )
    built.profiles = pd.DataFrame(prof)

    docs_dir = docs_root / "data_docs" / "local_site"
    docs_dir.mkdir(parents=True, exist_ok=True)
    built.docs_file = docs_dir / "index.html"
    built.docs_file.write_text("<html><body><h1>Data Docs of the UI test</h1></body></html>")
    runs = []
    for g, gate in enumerate(GATES):
        for r in range(4):
            failed = (r + g) % 3 == 0
            failures = (
                [
                    {
                        "expectation": "expect_column_values_to_not_be_null",
                        "column": "user_id",
                        "failing_count": 2 + r,
                        "examples": [{"event_id": f"e{r}"}],
                    }
                ]
                if failed
                else []
            )
            runs.append(
                {
                    "gate": gate,
                    "run_id": f"{gate}-{r}",
                    "checked_at": T0 + timedelta(hours=r),
                    "passed": not failed,
                    "n_expectations": 12,
                    "n_failed": len(failures),
                    "failures": json.dumps(failures),
                    "data_docs_path": str(built.docs_file),
                    "details": json.dumps({"rows": 100 + r}),
                }
            )
    built.gate_runs = pd.DataFrame(runs)

    est = []
    for e, when in enumerate((T0, T0 + timedelta(days=2))):
        for p in POLICIES:
            for s in ESTIMATORS:
                v = float(rng.uniform(0.02, 0.2))
                est.append(
                    {
                        "evaluated_at": when,
                        "run_id": f"ope-{e}",
                        "policy": p,
                        "estimator": s,
                        "estimate": v,
                        "ci_low": v - 0.01,
                        "ci_high": v + 0.01,
                        "n": 500 + e,
                        "is_current": p == SERVING_POLICY,  # the task marks the serving policy of each run
                    }
                )
    built.estimates = pd.DataFrame(est)

    fb = []
    slates = built.recommendations
    for day in range(5):
        for r in slates.itertuples(index=False):
            if rng.uniform() < 0.5:
                continue
            fb.append(
                {
                    "feedback_id": f"{r.recommendation_id}-{r.rank}-{day}",
                    "recommendation_id": r.recommendation_id,
                    "position": r.rank,
                    "user_id": r.user_id,
                    "item_id": r.item_id,
                    "shown_at": T0 + timedelta(days=day, hours=int(rng.integers(0, 20))),
                    "clicked": bool(rng.uniform() < (0.3 if r.is_exploration else 0.15)),
                    "is_exploration": bool(r.is_exploration),
                    "policy": r.policy,
                    "propensity": r.propensity,
                }
            )
    built.feedback = pd.DataFrame(fb)

    with wh.connect() as con:
        wh.execute(con, "create schema if not exists quality")
        wh.execute(con, "create schema if not exists ml")
        _create(
            wh,
            con,
            "quality.gate_runs",
            "gate varchar, run_id varchar, checked_at timestamptz, passed boolean, n_expectations bigint, "
            "n_failed bigint, failures varchar, data_docs_path varchar, details varchar",
        )
        wh.append_df(con, "quality.gate_runs", built.gate_runs)
        _create(
            wh,
            con,
            "ml.user_interest_profiles",
            "user_id varchar, tag varchar, weight double precision, evidence_count bigint, last_seen timestamptz, "
            "uncertainty double precision, status varchar, candidate_reason varchar, tagger_version varchar, "
            "as_of timestamptz",
        )
        wh.append_df(con, "ml.user_interest_profiles", built.profiles)
        _create(
            wh,
            con,
            "ml.policy_estimates",
            "evaluated_at timestamptz, run_id varchar, policy varchar, estimator varchar, estimate double precision, "
            "ci_low double precision, ci_high double precision, n bigint, is_current boolean",
        )
        wh.append_df(con, "ml.policy_estimates", built.estimates)
        _create(
            wh,
            con,
            "marts.bandit_feedback",
            "feedback_id varchar, recommendation_id varchar, position bigint, user_id varchar, item_id varchar, "
            "shown_at timestamptz, clicked boolean, is_exploration boolean, policy varchar, propensity double precision",
        )
        wh.append_df(con, "marts.bandit_feedback", built.feedback)
        con.commit()
    return built
