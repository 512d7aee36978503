"""Consent end to end: landing batches -> ingest -> dbt build -> the publish_audiences DAG.

The tiny shop marks a seeded share of users as opted out. On top of it two more users batches
land: one in the older export format (no marketing_opt_out column) re-sending opted-out users
with a changed country, and one that opts out a user who certainly matches the probe audience.
An audience that takes every profile as a lookalike (similarity >= 0, no cap to speak of) must
still contain no opted-out user.
"""

from __future__ import annotations

import pandas as pd
import pytest

pytestmark = [pytest.mark.dags, pytest.mark.dbt, pytest.mark.slow]


@pytest.fixture(scope="module")
def consent_world(tiny_shop, airflow_runtime, tmp_path_factory):
    from ml.features.dbt import build
    from ml.ingest.landing import ingest_paths
    from ml.orchestration.local import run_dag
    from ml.warehouse import Warehouse

    root = tmp_path_factory.mktemp("consent")
    users = pd.read_parquet(tiny_shop / "users.parquet")
    truth = pd.read_parquet(tiny_shop / "_ground_truth" / "user_interests.parquet")
    opted = set(users.loc[users["marketing_opt_out"], "user_id"])
    assert opted, "the tiny shop should opt some users out"
    # a user who really has the probe tag, opted in by the shop: the last batch opts them out
    active = truth[(truth["status"] == "active") & truth["tag"].str.startswith("cat:")]
    probe_tag = active["tag"].value_counts().index[0]
    target = sorted(set(active.loc[active["tag"] == probe_tag, "user_id"]) - opted)[0]
    resent = sorted(opted)[:3]

    landing = root / "landing"
    landing.mkdir()
    old_format = users[users["user_id"].isin(resent)].drop(columns="marketing_opt_out").assign(country="PT")
    old_format.to_csv(landing / "users_2_old_format.csv", index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    update = users[users["user_id"] == target].astype({"marketing_opt_out": str}).assign(marketing_opt_out="yes")
    update.to_csv(landing / "users_3_opt_out.csv", index=False, date_format="%Y-%m-%dT%H:%M:%SZ")

    wh = Warehouse(f"duckdb:///{root / 'warehouse.duckdb'}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INTERESTFLOW_WAREHOUSE", wh.url)
        mp.setenv("INTERESTFLOW_ARTIFACTS", str(root / "artifacts"))
        reports = ingest_paths([tiny_shop], wh, gate=False)
        reports += ingest_paths([landing / "users_2_old_format.csv"], wh, gate=False)
        reports += ingest_paths([landing / "users_3_opt_out.csv"], wh, gate=False)
        result = build(wh, target_path=root / "dbt-target")
        spec = {
            "name": "consent_probe",
            "tags": [{"tag": probe_tag, "min_weight": 0.0}],
            "include_candidates": True,
            "lookalike": {"max_size": 100_000, "min_similarity": 0.0},
        }
        run = run_dag("publish_audiences", {"audiences": ["outdoor_enthusiasts"], "extra_specs": [spec]})
    return {
        "wh": wh,
        "reports": reports,
        "dbt": result,
        "run": run,
        "opted": opted | {target},
        "target": target,
        "resent": resent,
        "probe_tag": probe_tag,
    }


def test_opt_outs_survive_ingest_and_dbt(consent_world):
    wh = consent_world["wh"]
    out = consent_world["dbt"].output
    assert consent_world["dbt"].returncode == 0 and "ERROR=0" in out
    assert "test_users_keep_the_latest_stated_marketing_consent" in out  # the dbt unit test ran
    assert all(r.status == "accepted" for r in consent_world["reports"])
    feats = wh.query("select user_id, country, marketing_opt_out from marts.user_features")
    assert feats["marketing_opt_out"].notna().all()
    flagged = set(feats.loc[feats["marketing_opt_out"].astype(bool), "user_id"])
    assert flagged == consent_world["opted"]
    # the old-format re-send replaced the profile but could not undo the opt-out
    resent = feats[feats["user_id"].isin(consent_world["resent"])]
    assert (resent["country"] == "PT").all() and resent["marketing_opt_out"].all()


def test_opted_out_users_never_appear_in_a_published_audience_even_as_lookalikes(consent_world):
    wh = consent_world["wh"]
    probe = wh.query("select user_id, source from serving.audience_consent_probe_current")
    profiles = wh.query("select distinct user_id, tag from marts.user_interest_profile")
    # the opted-out target does match the rule: only consent keeps it out
    assert consent_world["target"] in set(profiles.loc[profiles["tag"] == consent_world["probe_tag"], "user_id"])
    assert (probe["source"] == "lookalike").sum() > 0
    assert not set(probe["user_id"]) & consent_world["opted"]
    # everyone else with a profile is in: the lookalike pass was not simply empty
    everyone = set(profiles["user_id"]) - consent_world["opted"]
    assert set(probe["user_id"]) == everyone
    outdoor = wh.query("select user_id from serving.audience_outdoor_enthusiasts_current")
    assert not set(outdoor["user_id"]) & consent_world["opted"]


def test_audiences_refuse_to_publish_when_consent_is_unknown(consent_world, tmp_path):
    import shutil

    from ml.tasks.marketing import load_audience_inputs
    from ml.warehouse import Warehouse

    dst = tmp_path / "no-consent.duckdb"
    shutil.copy(consent_world["wh"].path, dst)
    wh = Warehouse(f"duckdb:///{dst}")
    with wh.connect() as con:
        wh.execute(con, "alter table marts.user_features drop column marketing_opt_out")
    with pytest.raises(RuntimeError, match="marketing_opt_out"):
        load_audience_inputs(wh)
