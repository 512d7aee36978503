"""Task functions of the publish_recommendations DAG: plan → score shards (a mapped task) →
switch. The work itself is in :mod:`ml.publish.recommendations`; ``publish_recommendations``
runs all three in one process (the simulator, the benchmarks and direct calls)."""

from __future__ import annotations

from typing import Any

from ml.explore.defaults import DEFAULT_PROPENSITY_DRAWS
from ml.marketing.serving import MarketingArgs
from ml.publish.recommendations import PublishPlan, PublishSettings, plan, publish, score_shard, switch
from ml.warehouse import Warehouse


def plan_publish(
    run_id: str = "manual",
    k: int = 10,
    keep_versions: int = 3,
    exclude_event_types: list[str] | None = None,
    warehouse: str | None = None,
    policy: str | None = None,
    policy_params: dict[str, Any] | None = None,
    exploration_budget: dict[str, float] | None = None,
    min_sessions: int | None = None,
    propensity_draws: int = DEFAULT_PROPENSITY_DRAWS,
    candidates_per_user: int = 50,
    campaigns: bool = True,
    campaign_at: str | None = None,
    campaign_holdout_share: float | None = None,
    new_item_budget: dict[str, Any] | None = None,
    shards: int | None = None,
) -> list[dict[str, Any]]:
    """The run's plan (see :func:`ml.publish.recommendations.plan`) as the arguments of each
    shard's task: ``[{"plan": plan, "shard": 0}, {"plan": plan, "shard": 1}, ...]``.

    ``policy`` serves a named policy instead of the registry's policy champion (``greedy``
    when there is none); ``campaign_at`` is the campaign clock (default: the newest event);
    ``campaign_holdout_share`` overrides each campaign's holdout size; ``new_item_budget``
    overrides ``ml.marketing.defaults.DEFAULT_NEW_ITEM_BUDGET`` key by key; ``shards``: None =
    1 on DuckDB, the warehouse pool's slots on PostgreSQL."""
    settings = PublishSettings(
        k=k,
        keep_versions=keep_versions,
        exclude_event_types=list(exclude_event_types or ["purchase"]),
        propensity_draws=propensity_draws,
        candidates_per_user=candidates_per_user,
        marketing=MarketingArgs(campaign_at, campaigns, campaign_holdout_share, new_item_budget),
    )
    wh = Warehouse.from_env(warehouse)
    p = plan(wh, run_id, settings, shards, policy, policy_params, exploration_budget, min_sessions)
    return [{"plan": p.to_dict(), "shard": i} for i in range(p.shards)]


def score_publish_shard(plan: dict[str, Any], shard: int, warehouse: str | None = None) -> dict[str, Any]:
    """Shard ``shard`` of the plan: its users' slates, written as the shard's part."""
    return score_shard(Warehouse.from_env(warehouse), PublishPlan.from_dict(plan), shard)


def switch_version(plan: dict[str, Any], warehouse: str | None = None) -> dict[str, Any]:
    """Publish every shard's part as one version with its slate log, in one transaction."""
    return switch(Warehouse.from_env(warehouse), PublishPlan.from_dict(plan))


def publish_recommendations(run_id: str = "manual", warehouse: str | None = None, **params: Any) -> dict[str, Any]:
    """Plan, every shard and the switch in this process (``params``: :func:`plan_publish`'s).
    Returns the switch's summary with each stage's seconds summed over the shards."""
    p = PublishPlan.from_dict(plan_publish(run_id, warehouse=warehouse, **params)[0]["plan"])
    return publish(Warehouse.from_env(warehouse), p)


def check_serving_age(max_age_hours: float | None = None, warehouse: str | None = None) -> dict:
    """``watch_serving``: fail (and so alert) when the served recommendations are older than
    ``max_age_hours`` (None: the ``INTERESTFLOW_SERVING_MAX_AGE_HOURS`` setting)."""
    from ml.orchestration.errors import fail_without_retry
    from ml.publish.freshness import StaleServingError
    from ml.publish.freshness import check_serving_age as check

    try:
        return check(max_age_hours, "recommendations", Warehouse(warehouse) if warehouse else None)
    except StaleServingError as err:  # a stale table is news now, not after the retries
        fail_without_retry(str(err))
