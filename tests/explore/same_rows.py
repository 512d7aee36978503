"""Characterisation of the publish path: the rows it publishes and logs for fixed inputs.

Run ``python -m tests.explore.same_rows record`` before a change and
``python -m tests.explore.same_rows check`` after it: the published frame, the slate log and
the logged contexts of several publish runs (policies with and without exploration, a
campaign window, the new-item slot, users with and without an interest profile) must hash the
same. The warehouse (tiny shop, seed 7: ingest, dbt, an item-kNN champion, synthetic interest
profiles) is built once under ``$SAME_ROWS_DIR`` (default /tmp/interestflow-same-rows).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(os.environ.get("SAME_ROWS_DIR", "/tmp/interestflow-same-rows"))
HASHES = Path(__file__).with_name("same_rows.json")

RUNS: dict[str, dict[str, Any]] = {
    "greedy": {"policy": "greedy"},
    "ucb1": {"policy": "ucb1"},
    "slot_allocator": {
        "policy": "slot_allocator",
        "exploration_budget": {"default": 0.3},
        "propensity_draws": 64,
        "campaign_at": "2026-11-02",
    },
    "thompson_campaign": {"policy": "thompson", "propensity_draws": 32, "campaign_at": "2026-10-20"},
    "greedy_campaign": {"policy": "greedy", "campaign_at": "2026-11-03", "campaign_holdout_share": 0.2},
    "linucb_no_new_items": {"policy": "linucb", "new_item_budget": {"slot_probability": 0.0}},
}


def _env() -> None:
    os.environ["INTERESTFLOW_WAREHOUSE"] = f"duckdb:///{ROOT / 'wh.duckdb'}"
    os.environ["INTERESTFLOW_ARTIFACTS"] = str(ROOT / "artifacts")
    os.environ["INTERESTFLOW_HOME"] = str(ROOT / "home")


def prepare() -> None:
    """The tiny shop's warehouse with a champion and interest profiles (once)."""
    _env()
    if (ROOT / "ready").exists():
        return
    from ml.features.dbt import build
    from ml.ingest.landing import ingest_paths
    from ml.shop.generate import write_shop
    from ml.tasks.training import evaluate_and_gate, train_candidate
    from ml.warehouse import Warehouse

    ROOT.mkdir(parents=True, exist_ok=True)
    shop = ROOT / "shop"
    if not (shop / "events.parquet").exists():
        write_shop(shop, size="tiny", seed=7)
    wh = Warehouse.from_env()
    ingest_paths([shop], wh)
    build(wh, target_path=ROOT / "target")
    cand = train_candidate("item_knn", {"neighbours": 50, "shrinkage": 10.0}, run_id="train-1")
    evaluate_and_gate([cand], run_id="train-1")
    # interest profiles for four users in five: the category tags, strongest half known, the
    # rest candidates (every fifth user keeps none: its tags are derived)
    with wh.connect() as con:
        wh.execute(con, "create schema if not exists ml")
        wh.execute(
            con,
            """create or replace table ml.user_interest_profiles as
            select user_id, tag, weight, evidence_count, last_seen_at as last_seen,
                   1.0 / sqrt(1 + evidence_count) as uncertainty,
                   case when row_number() over (partition by user_id order by weight desc, tag) <= 3
                        then 'known' else 'candidate' end as status
            from marts.user_interest_profile
            where tag like 'cat:%' and hash(user_id) % 5 <> 0""",
        )
    (ROOT / "ready").write_text("ok")


def _digest(df: pd.DataFrame, drop: tuple[str, ...] = ()) -> str:
    df = df.drop(columns=[c for c in drop if c in df.columns])
    df = df.sort_values(list(df.columns[:2])).reset_index(drop=True) if len(df) else df
    text = df.to_csv(index=False, float_format="%.17g")
    return hashlib.sha256(text.encode()).hexdigest()


def hashes() -> dict[str, dict[str, str]]:
    prepare()
    from ml.explore import columns as C
    from ml.tasks.publishing import publish_recommendations
    from ml.warehouse import Warehouse

    wh = Warehouse.from_env()
    out: dict[str, dict[str, str]] = {}
    for name, kw in RUNS.items():
        run_id = f"same-rows-{name}"
        publish_recommendations(run_id=run_id, **kw)
        recs = wh.query("select * from serving.recommendations_current order by user_id, rank")
        log = wh.query(f"select * from {C.LOGGED_SLATES} where run_id = ? order by user_id, position", [run_id])
        ctx = wh.query(f"select * from {C.SLATE_CONTEXTS} where run_id = ? order by user_id", [run_id])
        out[name] = {
            "rows": f"{len(recs)} ({int(recs['campaign'].notna().sum())} campaign, {int(recs['new_item'].sum())} new)",
            "published": _digest(recs.drop(columns=["run_id", "recommendation_id"])),
            "log": _digest(log, ("run_id", "recommendation_id", "as_of")),
            "contexts": _digest(ctx, ("run_id", "recommendation_id", "as_of")),
        }
        print(name, out[name], flush=True)
    return out


def main(argv: list[str]) -> int:
    mode = argv[1] if len(argv) > 1 else "check"
    got = hashes()
    if mode == "record":
        HASHES.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        return 0
    want = json.loads(HASHES.read_text())
    bad = {n: (want.get(n), got[n]) for n in got if want.get(n) != got[n]}
    for n, (w, g) in bad.items():
        print(f"DIFFERENT {n}: recorded {w}, now {g}")
    print("same rows" if not bad else f"{len(bad)} runs differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
