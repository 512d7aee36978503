"""Explore/exploit in the pipeline: publish with a policy, feedback back through ingest and
build_features, then the evaluate_policies DAG (OPE + policy gate), all as real DAG runs."""

from __future__ import annotations

import pandas as pd
import pytest

pytestmark = [pytest.mark.dags, pytest.mark.slow]

CANDIDATES = [{"policy": "thompson", "params": {}}, {"policy": "epsilon_greedy", "params": {"epsilon": 0.1}}]


def test_evaluate_policies_runs_on_new_marts_and_publishing_waits_for_both_gates(airflow_runtime):
    from ml.orchestration.local import load_dag

    dag = load_dag("evaluate_policies")
    assert "explore" in dag.tags and dag.catchup is False
    assert {t.task_id for t in dag.tasks} == {"evaluate", "gate"}
    assert all(t.pool == "warehouse" for t in dag.tasks)
    assert {"candidates", "window_days", "margin"} <= set(dag.params)
    assert [a.name for a in dag.timetable.asset_condition.objects] == ["feature_marts"]
    (gate,) = [t for t in dag.tasks if t.task_id == "gate"]
    assert [a.name for a in gate.outlets] == ["policy_champion"]
    # one publish per batch of new data: after both the model gate and the policy gate
    publish = load_dag("publish_recommendations")
    cond = publish.timetable.asset_condition
    assert type(cond).__name__ == "AssetAll"
    assert sorted(a.name for a in cond.objects) == ["champion_model", "policy_champion"]


@pytest.fixture(scope="module")
def policy_cycle(pipeline_runs, tiny_shop, tmp_path_factory):
    from ml.orchestration.local import run_dag
    from ml.simulate.landing import respond_to_slates
    from ml.tasks.publishing import publish_recommendations
    from ml.warehouse import Warehouse

    wh = Warehouse.from_env()
    # two shards: the DAG maps one score_shard task over each half of the users
    conf = {"policy": "slot_allocator", "propensity_draws": 32, "shards": 2}
    runs = {"publish": run_dag("publish_recommendations", conf)}
    recs = wh.query("select * from serving.recommendations_current")
    as_of = wh.query("select max(event_at) as t from marts.interaction_events")["t"].iloc[0]
    # a quarter of the users visits the next day and answers its slate; the batch stays under the
    # quality gates' drift minimum (500 rows), as a feedback-only batch of every user would not
    events = respond_to_slates(
        recs, tiny_shop, pd.Timestamp(as_of).normalize() + pd.Timedelta(days=1), seed=5, visit_share=0.25
    )
    d = tmp_path_factory.mktemp("dag-feedback")
    events.to_parquet(d / "events-feedback.parquet", index=False)
    runs["ingest_events"] = run_dag("ingest_events", {"paths": [str(d)]})
    runs["build_features"] = run_dag("build_features")
    runs["evaluate_policies"] = run_dag(
        "evaluate_policies", {"candidates": CANDIDATES, "n_bootstrap": 50, "propensity_draws": 32}
    )
    yield {"wh": wh, "recs": recs, "events": events, "runs": runs}
    publish_recommendations(run_id="policy-dags-teardown")  # leave a table consistent with the new purchases


def test_publish_dag_serves_the_requested_policy(policy_cycle):
    from ml.publish.shards import shard_of

    tis = {(ti.task_id, ti.map_index): str(ti.state) for ti in policy_cycle["runs"]["publish"].get_task_instances()}
    assert sorted(tis) == [("plan", -1), ("score_shard", 0), ("score_shard", 1), ("switch", -1)]
    assert all("success" in state for state in tis.values())
    recs = policy_cycle["recs"]
    assert set(shard_of(recs["user_id"].unique(), 2)) == {0, 1}  # both shards' users are served
    assert (recs["policy"] == "slot_allocator").all()
    assert recs["is_exploration"].any() and recs["propensity"].between(0, 1, inclusive="right").all()
    assert recs.groupby("user_id")["item_id"].nunique().eq(10).all()


def test_feedback_reaches_the_mart_and_the_evaluation(policy_cycle):
    from ml.registry import Registry

    wh = policy_cycle["wh"]
    fb = wh.query("select * from marts.bandit_feedback where has_propensity")
    assert len(fb) == (policy_cycle["events"]["event_type"] == "impression").sum() > 0
    assert fb["clicked"].sum() == (policy_cycle["events"]["event_type"] == "click").sum()
    run_id = policy_cycle["runs"]["evaluate_policies"].run_id
    est = wh.query("select * from ml.policy_estimates where run_id = ?", [run_id])
    assert {"greedy", "thompson", "epsilon_greedy(epsilon=0.1)"} <= set(est["policy"])
    assert (est["n"] == len(fb)).all()
    dec = Registry(wh).decisions("policy")
    assert run_id in set(dec["run_id"])
