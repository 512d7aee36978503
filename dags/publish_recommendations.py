"""
### publish_recommendations
Applies the serving explore/exploit policy to the champion recommender's candidates and publishes
a slate of `k` items per active user atomically: a new version table
`serving.recommendations__<version>` is written, checked by the pre-publish gate, then
`serving.recommendations_current` is switched to it in one transaction.

* Runs when both `champion_model` (retrain_models) and `policy_champion` (evaluate_policies)
  have been updated since its last run: once per batch of new data.
* The policy is the registry's `policy` champion (see `evaluate_policies`), or `greedy` when there
  is none; the `policy` Param names one explicitly for a manual run.
* Every shown item carries its interest tag (`reason_tag`), `policy`, `propensity` (exact, or Monte
  Carlo over `propensity_draws` slates with `propensity_se`), `is_exploration` and the
  `recommendation_id` that feedback events carry back.
* The slot allocator reserves `exploration_budget` (share of slots per user segment) for candidate
  interests, scaled down for users with fewer than `min_sessions` sessions.
* Campaign windows (`ml/marketing/campaigns/*.yml`) active at the campaign clock (`campaign_at`,
  default the newest event) re-rank boosted items within each campaign's share of slots for
  users outside its hashed holdout (`campaign_holdout_share` overrides its size); exploration
  slots are never touched and propensities are recomputed, the `campaign` column names the
  campaign that promoted a row. Outside every window nothing changes.
* New items get a bounded exposure budget (`new_item_budget`): with probability
  `slot_probability` a user's last slot shows a new item matching the user's interests, flagged
  `is_exploration`/`new_item` with its exact propensity, at most `daily_cap` expected impressions
  per item; items graduate once their CTR interval is narrower than `ci_width`.
* Every known user gets `k` items: users without history (in the users batch, no events yet) get
  a cold-start slate of popular interests drawn by the same policy, flagged `cold_start`.
* Three tasks: `plan` fixes the champion, the policy and the shard count; `score_shard` (mapped,
  one task per shard of users split by a stable hash) checks its users' slates with the
  pre-publish gate and writes them as its part (PostgreSQL: `COPY` into the version's staged
  table; DuckDB: Parquet under the state folder); `switch` publishes every part as one version
  with its slate log in one transaction. A retried shard replaces its part; a failed or killed
  shard or switch leaves the current version served. On PostgreSQL the shards run side by
  side on the Celery workers (`shards` Param; default the warehouse pool's slots).
* Randomness is seeded per (user, day): re-running the same DAG run rewrites the same rows. The
  last `keep_versions` versions are kept for rollback (`python -m ml publish rollback --to VERSION`).
* A deadline alert mails the `interestflow_alerts` connection when a run has not finished
  `INTERESTFLOW_PUBLISH_DEADLINE_MINUTES` (default 120) after it was queued.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from interestflow_defaults import (
    CHAMPION_MODEL,
    DEFAULT_ARGS,
    POLICY_CHAMPION,
    RECOMMENDATIONS,
    START,
    WAREHOUSE_POOL,
    publish_deadline,
)
from ml.explore.defaults import DEFAULT_EXPLORATION_BUDGET, DEFAULT_MIN_SESSIONS, DEFAULT_PROPENSITY_DRAWS
from ml.marketing.defaults import DEFAULT_NEW_ITEM_BUDGET


@dag(
    dag_id="publish_recommendations",
    # once per day's data: after retrain_models' gate and evaluate_policies' gate both ran
    schedule=(CHAMPION_MODEL & POLICY_CHAMPION),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["interestflow", "publishing", "explore"],
    default_args=DEFAULT_ARGS,
    # an e-mail when a run is still unfinished INTERESTFLOW_PUBLISH_DEADLINE_MINUTES after it was queued
    deadline=publish_deadline(),
    params={
        "k": Param(10, type="integer", minimum=1, maximum=100, description="Items per user."),
        "keep_versions": Param(3, type="integer", minimum=1, description="Published versions kept."),
        "exclude_event_types": Param(
            ["purchase"], type="array", description="Never recommend items the user did this with."
        ),
        "policy": Param(
            "",
            type="string",
            description="Serve this policy (see `python -m ml policy list`); empty = the registry's policy champion.",
        ),
        "exploration_budget": Param(
            DEFAULT_EXPLORATION_BUDGET,
            type="object",
            description="Share of slots reserved for exploration per user segment ('default' for the rest).",
        ),
        "min_sessions": Param(
            DEFAULT_MIN_SESSIONS, type="integer", minimum=0, description="Users with fewer sessions explore less."
        ),
        "propensity_draws": Param(
            DEFAULT_PROPENSITY_DRAWS, type="integer", minimum=1, description="Monte Carlo slates per user."
        ),
        "campaigns": Param(
            True, type="boolean", description="Apply the campaign windows active at the campaign clock."
        ),
        "campaign_at": Param(
            "", type="string", description="Campaign clock (ISO time); empty = the newest event in the warehouse."
        ),
        "campaign_holdout_share": Param(
            None,
            type=["null", "number"],
            minimum=0,
            maximum=0.99,
            description="Share of users held out of every campaign; empty = each campaign's own holdout_share.",
        ),
        "shards": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="Users split into this many shards, each a mapped task; empty = 1 on DuckDB, "
            "the warehouse pool's slots on PostgreSQL.",
        ),
        "new_item_budget": Param(
            DEFAULT_NEW_ITEM_BUDGET,
            type="object",
            description="New-item exposure: slot_probability (0 = off), daily_cap, ci_width, relative, targeted, "
            "max_age_days.",
        ),
    },
)
def publish_recommendations():
    @task(pool=WAREHOUSE_POOL)
    def plan(params=None, run_id=None) -> list:
        from ml.tasks.publishing import plan_publish

        return plan_publish(
            run_id=run_id,
            k=params["k"],
            keep_versions=params["keep_versions"],
            exclude_event_types=params["exclude_event_types"],
            policy=params["policy"] or None,
            exploration_budget=params["exploration_budget"],
            min_sessions=params["min_sessions"],
            propensity_draws=params["propensity_draws"],
            campaigns=params["campaigns"],
            campaign_at=params["campaign_at"] or None,
            campaign_holdout_share=params["campaign_holdout_share"],
            new_item_budget=params["new_item_budget"],
            shards=params["shards"],
        )

    @task(pool=WAREHOUSE_POOL)
    def score_shard(plan: dict, shard: int) -> dict:
        from ml.tasks.publishing import score_publish_shard

        return score_publish_shard(plan, shard)

    @task(outlets=[RECOMMENDATIONS], pool=WAREHOUSE_POOL)
    def switch(shards: list, parts: list) -> dict:
        from ml.tasks.publishing import switch_version

        return switch_version(shards[0]["plan"])

    shards = plan()  # one {"plan", "shard"} per shard
    parts = score_shard.expand_kwargs(shards)
    switch(shards, parts)


publish_recommendations()
