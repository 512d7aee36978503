"""Column and table names of the explore/exploit layer (logged slates, contexts, feedback)."""

from __future__ import annotations

RECOMMENDATION_ID = "recommendation_id"
POSITION = "position"
TAG = "tag"
POLICY = "policy"
POLICY_VERSION = "policy_version"
PROPENSITY = "propensity"
PROPENSITY_SE = "propensity_se"
IS_EXPLORATION = "is_exploration"
ARM_FEATURES = "arm_features"
CLICKED = "clicked"
PURCHASED = "purchased"
REVENUE = "revenue"
REWARD = "reward"  # the outcome chosen as reward (ml.explore.reward.with_reward); not a mart column
SHOWN_AT = "shown_at"
AS_OF = "as_of"
RUN_ID = "run_id"
FEEDBACK_ID = "feedback_id"
HAS_PROPENSITY = "has_propensity"
LOGGED_RUN_ID = "logged_run_id"
CONTEXT = "context"

# warehouse tables owned by this layer
LOGGED_SLATES = "ml.logged_slates"
SLATE_CONTEXTS = "ml.slate_contexts"
POLICY_ESTIMATES = "ml.policy_estimates"
BANDIT_FEEDBACK = "marts.bandit_feedback"

# one row per shown item of a published slate (the log OPE and the feedback mart join to)
LOGGED_SLATE_COLUMNS = (
    RECOMMENDATION_ID,
    RUN_ID,
    "user_id",
    POSITION,
    "item_id",
    TAG,
    POLICY,
    POLICY_VERSION,
    PROPENSITY,
    PROPENSITY_SE,
    IS_EXPLORATION,
    "score",
    ARM_FEATURES,
    AS_OF,
)
# ml.policy_estimates: one row per evaluation run x policy x estimator
POLICY_ESTIMATE_COLUMNS = (
    "evaluated_at",
    RUN_ID,
    POLICY,
    "estimator",
    "estimate",
    "ci_low",
    "ci_high",
    "n",
    "is_current",
    REWARD,
)
# marts.bandit_feedback, and the frame ml.explore.feedback.feedback_from_events returns
FEEDBACK_COLUMNS = (
    FEEDBACK_ID,
    RECOMMENDATION_ID,
    POSITION,
    "user_id",
    "item_id",
    SHOWN_AT,
    CLICKED,
    PURCHASED,
    REVENUE,
    TAG,
    POLICY,
    POLICY_VERSION,
    PROPENSITY,
    PROPENSITY_SE,
    IS_EXPLORATION,
    ARM_FEATURES,
    LOGGED_RUN_ID,
    HAS_PROPENSITY,
)
