"""Marketing figures in the simulator: new-item judgement with and without targeting, a campaign."""

from __future__ import annotations

import numpy as np
import pytest

from ml.marketing.campaigns import Campaign
from ml.marketing.new_items import NewItemBudget
from ml.marketing.report import campaign_report
from ml.simulate.marketing import new_item_impressions, shift_window, simulate_campaign, summarise_new_items

pytestmark = [pytest.mark.unit, pytest.mark.slow]


@pytest.fixture(scope="module")
def world():
    from ml.simulate.runner import SimulationSettings, build_world

    return build_world(SimulationSettings(size="tiny", users=None, days=3))


def test_targeting_finds_clickers_so_new_items_are_judged_sooner(world):
    budget = NewItemBudget(ci_width=0.5, relative=True)
    targeted = new_item_impressions(world, budget, targeted=True, seed=1)
    untargeted = new_item_impressions(world, budget, targeted=False, seed=1)
    assert len(targeted) == len(untargeted) > 0
    t, u = summarise_new_items(targeted), summarise_new_items(untargeted)
    assert t["mean_true_ctr"] > u["mean_true_ctr"]
    assert t["median_impressions"] < u["median_impressions"]
    # exposure per item and day never exceeds the cap
    assert (targeted["daily_impressions"] <= budget.daily_cap + 1e-9).all()
    assert np.isfinite(targeted["impressions"]).all()


def test_simulated_campaign_reports_uplift_with_an_interval(world):
    camp = Campaign(
        name="tent_sale", start="2026-01-01", end="2026-01-02", boost_tags=["style:outdoor"], holdout_share=0.3
    )
    outcomes = simulate_campaign(world, camp, days=2, seed=1)
    assert set(outcomes.columns) == {"user_id", "impressions", "clicks", "purchases"}
    assert (outcomes["impressions"] > 0).all()
    rep = campaign_report(shift_window(camp, world.start, 2), outcomes, n_boot=300)
    for m in rep["metrics"]:
        assert m["ci_low"] <= m["uplift"] <= m["ci_high"]
        assert m["treatment_users"] + m["holdout_users"] == len(outcomes)


def test_bench_module_follows_the_bench_contract():
    import argparse

    from ml.bench import marketing

    p = argparse.ArgumentParser()
    marketing.add_arguments(p)
    args = p.parse_args(["--out", "x", "--audience-size", "none"])
    assert marketing.NAME == "marketing" and marketing.HELP and callable(marketing.run)
    assert args.audience_size == "none" and args.campaign == "winter_outdoor_sale"
