"""
### publish_audiences
Materialises the marketing audiences defined in `ml/marketing/audiences/*.yml` (and any extra
spec given in the `extra_specs` Param) from users' interest profiles: tag rules with minimum
weights, known-or-candidate, recency, segment, spend band, exclusions, and lookalikes with a
size cap and similarity threshold. Users who opted out of marketing never appear.

Each audience is published atomically as a versioned table behind `serving.audience_<name>_current`;
the task returns sizes, exclusion counts and pairwise overlaps.

`report_campaigns` then reports every campaign window (`ml/marketing/campaigns/*.yml`) that has
begun: clicks, purchases and revenue per exposed user against its holdout with 95 % intervals,
and the return on the campaign's `spend` (ROAS), into `ml.campaign_reports` (shown on the
Interestflow page; `python -m ml campaign report NAME` writes the same rows by hand).

`generate_copy` writes marketing copy per published audience and live campaign (active, or
starting within `copy_lead_days`): a causal language model (`copy_model`, a local folder; by
default a small model trained on the shop's catalogue) writes candidates, a grounding gate checks
every product, price, brand, category and discount they name against the catalogue and the
campaign spec, and the passing variants (or a template, when none passes) are published to
`serving.copy_<audience>`, one variant per campaign copy arm. It returns the pass rate and the
reasons candidates were dropped; the page shows them per campaign.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from interestflow_defaults import DEFAULT_ARGS, RECOMMENDATIONS, START, WAREHOUSE_POOL
from ml.marketing.defaults import DEFAULT_BANNED_PHRASES, DEFAULT_COPY_ATTEMPTS, DEFAULT_COPY_LEAD_DAYS


@dag(
    dag_id="publish_audiences",
    schedule=[RECOMMENDATIONS],
    start_date=START,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["interestflow", "marketing"],
    default_args=DEFAULT_ARGS,
    params={
        "audiences": Param([], type="array", description="Audience names to build; empty = all defined."),
        "extra_specs": Param([], type="array", description="Extra audience specs (same keys as the YAML files)."),
        "keep_versions": Param(3, type="integer", minimum=1),
        "copy_model": Param(
            "",
            type="string",
            description="Local folder of a causal LM for copy; empty = the setting or the catalogue model.",
        ),
        "banned_phrases": Param(
            DEFAULT_BANNED_PHRASES, type="array", description="Phrases no copy variant may contain."
        ),
        "copy_attempts": Param(DEFAULT_COPY_ATTEMPTS, type="integer", minimum=1, description="Candidates per variant."),
        "copy_lead_days": Param(DEFAULT_COPY_LEAD_DAYS, type="number", minimum=0),
        "copy_lm": Param({}, type="object", description="Training settings of the catalogue model (e.g. steps)."),
        "allowed_words": Param(
            [], type="array", description="Words copy may use beyond the catalogue's text and the dictionary."
        ),
    },
)
def publish_audiences():
    @task(pool=WAREHOUSE_POOL)
    def build_and_publish(params=None, run_id=None) -> dict:
        from ml.tasks.marketing import publish_audiences

        return publish_audiences(
            run_id=run_id,
            names=params["audiences"] or None,
            extra_specs=params["extra_specs"],
            keep_versions=params["keep_versions"],
        )

    @task(pool=WAREHOUSE_POOL)
    def report_campaigns(run_id=None) -> dict:
        from ml.tasks.marketing import report_campaigns

        return report_campaigns(run_id=run_id)

    @task(pool=WAREHOUSE_POOL)
    def generate_copy(params=None, run_id=None) -> dict:
        from ml.tasks.marketing import generate_copy

        return generate_copy(
            run_id=run_id,
            names=params["audiences"] or None,
            model=params["copy_model"] or None,
            banned_phrases=params["banned_phrases"],
            attempts=params["copy_attempts"],
            lead_days=params["copy_lead_days"],
            keep_versions=params["keep_versions"],
            lm_settings=params["copy_lm"],
            allowed_words=params["allowed_words"],
        )

    build_and_publish() >> [report_campaigns(), generate_copy()]


publish_audiences()
