"""
### evaluate_policies
Off-policy evaluation of explore/exploit policies on the latest logged feedback, and the policy
gate. Runs whenever the feature marts are rebuilt (`feature_marts`, so `marts.bandit_feedback`
holds the newest answers): once a day for a shop that exports daily.

1. `evaluate`: replays the serving policy and every candidate (`candidates` Param) on the slates
   logged in the last `window_days` days (`marts.bandit_feedback` joined to the logged contexts),
   with DM, IPS, SNIPS, DR, SNDR, switch-DR and DRos and their bootstrap intervals, measured by
   `reward`: `click`, `purchase` or `revenue` (price x quantity of the purchases attributed to a
   shown slot, see the mart; empty: the `policy_reward` setting, what the serving policy learns
   from); each candidate learns from the same reward on the feedback before the window. Writes
   the estimates to `ml.policy_estimates`. Whatever the reward, each policy's click-through is
   estimated too (the guard).
2. `gate`: a candidate replaces the serving policy only if the lower bound of its DR-family
   estimate (chosen by the rule in `ml/ope/select.py`) beats the serving policy's estimate plus
   `margin`, and its click-through interval reaches the serving policy's click-through minus
   `ctr_guard`. The decision and its numbers go to the registry (family `policy`); override by hand
   with `python -m ml policy override NAME --reason ...`.

The gate emits `policy_champion`; `publish_recommendations` runs once both it and
`champion_model` (from `retrain_models`) are fresh, and serves the policy champion.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from interestflow_defaults import DEFAULT_ARGS, FEATURE_MARTS, POLICY_CHAMPION, START, WAREHOUSE_POOL
from ml.explore.defaults import DEFAULT_POLICY_CANDIDATES, POLICY_REWARDS


@dag(
    dag_id="evaluate_policies",
    schedule=[FEATURE_MARTS],
    start_date=START,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["interestflow", "explore"],
    default_args=DEFAULT_ARGS,
    params={
        "candidates": Param(DEFAULT_POLICY_CANDIDATES, type="array", description="Policy configs: {policy, params}."),
        "window_days": Param(7, type="number", minimum=0.1, description="Evaluate on feedback of the last N days."),
        "n_bootstrap": Param(200, type="integer", minimum=20, description="Bootstrap resamples per interval."),
        "propensity_draws": Param(128, type="integer", minimum=1, description="Monte Carlo slates per context."),
        "reward": Param(
            "",
            type="string",
            enum=["", *POLICY_REWARDS],
            description="What a policy is measured by and the candidates learn from: clicks, attributed purchases or "
            "their revenue per slot; empty = the policy_reward setting (click unless set), what the serving policy learns from.",
        ),
        "margin": Param(0.0, type="number", description="Required gain (reward per slot) over the serving policy."),
        "ctr_guard": Param(
            0.0,
            type="number",
            minimum=0,
            description="Largest click-through fall per slot a candidate may show (guard, whatever the reward).",
        ),
    },
)
def evaluate_policies():
    @task(pool=WAREHOUSE_POOL)
    def evaluate(params=None, run_id=None) -> dict:
        from ml.tasks.policies import evaluate_policies

        return evaluate_policies(
            run_id=run_id,
            candidates=params["candidates"],
            window_days=params["window_days"],
            n_bootstrap=params["n_bootstrap"],
            propensity_draws=params["propensity_draws"],
            reward=params["reward"] or None,
        )

    @task(outlets=[POLICY_CHAMPION], pool=WAREHOUSE_POOL)
    def gate(evaluation: dict, params=None, run_id=None) -> dict:
        from ml.tasks.policies import gate_policies

        return gate_policies(evaluation, run_id=run_id, margin=params["margin"], ctr_guard=params["ctr_guard"])

    gate(evaluate())


evaluate_policies()
