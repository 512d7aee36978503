"""The dbt project on DuckDB (default target): builds with its unit and data tests, contracts
hold, sessions follow the 30-minute rule, late events are merged exactly once, rebuilding is
idempotent and training snapshots are keyed by their data."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest
import yaml

from ml import config

pytestmark = [pytest.mark.dbt, pytest.mark.slow]

MARTS = (
    "interaction_events",
    "interactions",
    "item_features",
    "user_features",
    "training_snapshots",
    "user_interest_profile",
)


def _n(wh, sql: str, params=None) -> int:
    return int(wh.query(sql, params).iloc[0, 0])


def test_build_runs_models_unit_tests_and_data_tests(built_duckdb, dbt_target):
    _, result = built_duckdb
    out = result.output
    assert result.returncode == 0 and "ERROR=0" in out
    assert (dbt_target / "manifest.json").exists()  # artefacts kept out of the shared dbt/target
    for unit in (
        "test_events_keep_one_row_per_event_id",
        "test_events_late_arrivals_are_merged_exactly_once",
        "test_sessions_split_after_30_minutes_of_inactivity",
        "test_user_tag_affinity_decays_by_half_per_half_life",
        "test_item_popularity_decays_from_the_latest_weighted_event",
        "test_interactions_decay_and_sum_per_user_item",
    ):
        assert unit in out, f"unit test {unit} did not run"


def test_a_scheduled_task_builds_its_model_and_data_tests_without_the_unit_tests(built_copy, dbt_target):
    """What build_features' cosmos tasks run: a model's selection, the exclusion cosmos adds for
    a test with several parents, and the tasks' flags (ml.orchestration.cosmos)."""
    from ml.features.dbt import run_dbt
    from ml.orchestration.cosmos import TASK_FLAGS

    detached = "relationships_stg_shop__events_item_id__item_id__ref_stg_shop__items_"
    flags = [*TASK_FLAGS, "--exclude", detached]
    model = run_dbt(["build", "--select", "stg_shop__events", *flags], built_copy, target_path=dbt_target).output
    assert "OK created sql incremental model staging.stg_shop__events" in model
    assert "PASS not_null_stg_shop__events_event_at" in model  # the data tests ran on the day's rows
    assert "unit_test" not in model and "test_events_keep_one_row_per_event_id" not in model
    assert detached not in model  # both exclusions apply
    seed = run_dbt(["seed", "--select", "tag_vocabulary", *flags], built_copy, target_path=dbt_target).output
    assert "OK loaded seed file" in seed  # the seed tasks take the same flags


def _declared_marts() -> dict[str, dict]:
    out = {}
    for path in (config.DBT_DIR / "models" / "marts").glob("_*.yml"):
        for m in yaml.safe_load(path.read_text()).get("models", []):
            out[m["name"]] = m
    return out


def test_every_mart_enforces_its_contract_and_has_exactly_the_declared_columns(built_duckdb):
    wh, _ = built_duckdb
    declared = _declared_marts()
    assert set(MARTS) <= set(declared)
    for name, model in declared.items():
        assert model["config"]["contract"]["enforced"] is True, name
        cols = wh.query(
            "select column_name from information_schema.columns where table_schema = 'marts' and table_name = ? "
            "order by ordinal_position",
            [name],
        )["column_name"].tolist()
        assert cols == [c["name"] for c in model["columns"]], name
        for c in model["columns"]:
            assert c.get("description"), f"{name}.{c['name']} has no description"


def test_marts_the_models_read_are_filled(built_duckdb):
    wh, _ = built_duckdb
    for name in MARTS:
        assert _n(wh, f"select count(*) from marts.{name}") > 0, name
    # every weighted staged event is an interaction event
    assert _n(wh, "select count(*) from marts.interaction_events") == _n(
        wh,
        "select count(*) from staging.stg_shop__events where item_id is not null and event_type in "
        "('view','click','add_to_cart','review','purchase')",
    )


def test_sessions_follow_the_30_minute_inactivity_rule(built_duckdb):
    wh, _ = built_duckdb
    e = wh.query(
        "select user_id, session_number, event_seq, minutes_since_previous from intermediate.int_events_sessionised"
    )
    inside = e[e["event_seq"] > 1]
    starts = e[(e["event_seq"] == 1) & (e["session_number"] > 1)]
    assert (inside["minutes_since_previous"] <= 30).all()
    assert (starts["minutes_since_previous"] > 30).all()
    assert len(starts) > 0 and len(inside) > 0
    n_sessions = _n(wh, "select count(*) from intermediate.int_sessions_built")
    assert n_sessions == e.groupby(["user_id", "session_number"]).ngroups


def test_interest_profile_shares_sum_to_one_per_user_and_kind(built_duckdb):
    wh, _ = built_duckdb
    p = wh.query(
        "select user_id, tag_kind, sum(weight_share) as s, min(tag_rank) as r from marts.user_interest_profile group by 1, 2"
    )
    assert p["s"].to_numpy() == pytest.approx(1.0)
    assert (p["r"] == 1).all()
    kinds = set(wh.query("select distinct tag_kind from marts.user_interest_profile")["tag_kind"])
    assert kinds == {"department", "category", "style", "brand-tier"}


def test_training_snapshot_split_is_time_based(built_duckdb):
    wh, _ = built_duckdb
    s = wh.query("select snapshot_id, cutoff_at, as_of, split, event_at from marts.training_snapshots")
    assert s["snapshot_id"].nunique() == 1 and s["snapshot_id"].iloc[0].startswith("snap-")
    assert (s["as_of"] - s["cutoff_at"]).dt.total_seconds().eq(7 * 86400).all()
    assert (s.loc[s["split"] == "train", "event_at"] < s["cutoff_at"].iloc[0]).all()
    assert (s.loc[s["split"] == "test", "event_at"] >= s["cutoff_at"].iloc[0]).all()
    assert len(s) == _n(wh, "select count(*) from marts.interaction_events")


def _snapshot(wh) -> dict[str, pd.DataFrame]:
    out = {}
    for name in ("interactions", "item_features", "user_features", "user_interest_profile"):
        df = wh.query(f"select * from marts.{name}")
        out[name] = df.sort_values(list(df.columns[:2])).reset_index(drop=True)
    return out


def test_rebuild_is_idempotent_and_late_events_merge_exactly_once(built_copy, tiny_shop, dbt_target):
    from ml.features.dbt import build
    from ml.ingest.landing import ingest_file

    wh = built_copy
    before = _snapshot(wh)
    snap_before = set(wh.query("select distinct snapshot_id from marts.training_snapshots")["snapshot_id"])
    n_staged = _n(wh, "select count(*) from staging.stg_shop__events")

    build(wh, target_path=dbt_target)  # no new data: same rows, same snapshot
    after = _snapshot(wh)
    for name, df in before.items():
        pd.testing.assert_frame_equal(df, after[name], check_exact=False, rtol=1e-9, obj=name)
    assert set(wh.query("select distinct snapshot_id from marts.training_snapshots")["snapshot_id"]) == snap_before

    # a late batch: September events (new ids) arriving now ...
    late = pd.read_parquet(tiny_shop / "events.parquet")
    late = late[late["event_type"] == "view"].head(40).copy()
    late["event_id"] = "late-" + late["event_id"]
    late["event_time"] = pd.Timestamp("2026-09-05 10:00", tz="UTC") + pd.to_timedelta(range(40), unit="min")
    path = built_copy.path.parent / "events-late.parquet"
    late.to_parquet(path, index=False)
    report = ingest_file(path, wh, now=datetime.now(UTC), gate=False)
    assert report.accepted == 40
    # ... and a stray later copy of an already staged event that bypassed ingest (another loader)
    first = wh.query("select event_id, user_id from raw.events where event_id not like 'late-%' limit 1").iloc[0]
    with wh.connect() as con:
        con.execute(
            "insert into raw.events select * replace ('someone-else' as user_id, now() as _ingested_at, 'stray' as _batch_id) "
            "from raw.events where event_id = ?",
            [first["event_id"]],
        )

    build(wh, target_path=dbt_target)
    assert _n(wh, "select count(*) from staging.stg_shop__events") == n_staged + 40
    assert _n(wh, "select count(distinct event_id) from staging.stg_shop__events") == n_staged + 40
    assert _n(wh, "select count(*) from marts.interaction_events where event_id like 'late-%'") == 40
    kept = wh.query(
        "select user_id, batch_id from staging.stg_shop__events where event_id = ?", [first["event_id"]]
    ).iloc[0]
    assert kept["user_id"] == first["user_id"] and kept["batch_id"] != "stray"  # the first-ingested copy stays
    snaps = wh.query("select snapshot_id, count(*) as n from marts.training_snapshots group by 1")
    assert len(snaps) == 2 and set(snap_before) < set(snaps["snapshot_id"])  # new data: new id, old one kept
    n_now = _n(wh, "select count(*) from marts.interaction_events")
    assert sorted(snaps["n"]) == [n_now - 40, n_now]


def test_docs_generate_works(built_duckdb, dbt_target):
    from ml.features.dbt import run_dbt

    wh, _ = built_duckdb
    result = run_dbt(["docs", "generate", "--no-compile"], wh, target_path=dbt_target)
    assert result.returncode == 0
    catalog = (dbt_target / "catalog.json").read_text()
    for name in MARTS:
        assert f"model.interestflow.{name}" in catalog
