import numpy as np
import pandas as pd
import pytest

from ml.marketing.campaigns import HOLDOUT, TREATMENT, Campaign, arm, load_campaigns
from ml.marketing.report import uplift

pytestmark = pytest.mark.unit

CAMP = Campaign(
    name="sale",
    start="2026-10-01",
    end="2026-10-15",
    boost_tags=["cat:sports_tents"],
    boost=10.0,
    max_share=0.3,
    holdout_share=0.5,
)


def test_holdout_is_deterministic_and_about_the_right_size():
    users = np.array([f"user{i}" for i in range(20000)])
    c = Campaign(name="x", start="2026-01-01", end="2026-02-01", boost_items=["i1"], holdout_share=0.1)
    a1, a2 = arm(users, c), arm(users, c)
    assert (a1 == a2).all()
    share = (a1 == HOLDOUT).mean()
    assert share == pytest.approx(0.1, abs=0.01)  # 3 sigma ≈ 0.0064
    other = arm(users, Campaign(name="y", start="2026-01-01", end="2026-02-01", boost_items=["i1"], holdout_share=0.1))
    assert ((a1 == HOLDOUT) & (other == HOLDOUT)).mean() == pytest.approx(0.01, abs=0.004)  # independent per campaign


def test_uplift_ci_covers_a_known_effect():
    rng = np.random.default_rng(1)
    users = np.array([f"u{i}" for i in range(4000)])
    arms = arm(users, CAMP)
    clicks = rng.poisson(np.where(arms == TREATMENT, 1.3, 1.0))
    rep = uplift(pd.DataFrame({"user_id": users, "clicks": clicks}), CAMP, "clicks")
    assert rep.ci_low < 0.3 < rep.ci_high
    assert rep.ci_low > 0
    assert rep.treatment_users + rep.holdout_users == 4000


def test_campaign_validation_and_repo_files():
    with pytest.raises(ValueError, match="end"):
        Campaign(name="bad", start="2026-10-10", end="2026-10-01", boost_items=["i"])
    with pytest.raises(ValueError, match="boost at least"):
        Campaign(name="bad", start="2026-10-01", end="2026-10-10")
    assert "winter_outdoor_sale" in load_campaigns()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"discount_percent": 0}, "discount_percent must be in"),
        ({"discount_percent": 100}, "discount_percent must be in"),
        ({"discount_percent": "15"}, "discount_percent must be a number"),
        ({"copy_variants": 0}, "copy_variants must be a whole number"),
        ({"copy_variants": 2.5}, "copy_variants must be a whole number"),
    ],
)
def test_discount_and_copy_variants_are_validated(extra, message):
    with pytest.raises(ValueError, match=message):
        Campaign(name="bad", start="2026-10-01", end="2026-10-10", boost_items=["i"], **extra)


def test_copy_variants_split_the_treatment_arm_evenly_and_independently_of_the_holdout():
    from ml.marketing.campaigns import copy_variant

    users = np.array([f"user{i}" for i in range(30000)])
    c = Campaign(name="x", start="2026-01-01", end="2026-02-01", boost_items=["i1"], holdout_share=0.2, copy_variants=3)
    v, arms = copy_variant(users, c), arm(users, c)
    assert (v == copy_variant(users, c)).all() and set(v) == {0, 1, 2}
    for k in range(3):  # a third of each arm (3 sigma of a share of 1/3 over 6,000 holdout users ≈ 0.018)
        assert (v[arms == TREATMENT] == k).mean() == pytest.approx(1 / 3, abs=0.01)
        assert (v[arms == HOLDOUT] == k).mean() == pytest.approx(1 / 3, abs=0.02)


def test_each_copy_variant_is_reported_against_the_whole_holdout():
    from ml.marketing.campaigns import copy_variant
    from ml.marketing.report import campaign_report, report_rows

    rng = np.random.default_rng(2)
    users = np.array([f"u{i}" for i in range(6000)])
    c = Campaign(name="x", start="2026-01-01", end="2026-02-01", boost_items=["i1"], holdout_share=0.3, copy_variants=2)
    arms, v = arm(users, c), copy_variant(users, c)
    # variant 1's copy works (+0.5 clicks per user), variant 0's does nothing
    clicks = rng.poisson(np.where((arms == TREATMENT) & (v == 1), 1.5, 1.0))
    rep = campaign_report(c, pd.DataFrame({"user_id": users, "clicks": clicks}), n_boot=500)
    rows = {r["copy_variant"]: r for r in rep["variants"]}
    assert set(rows) == {0, 1} and all(r["metric"] == "clicks" for r in rows.values())
    assert rows[0]["holdout_users"] == rows[1]["holdout_users"] == (arms == HOLDOUT).sum()
    assert rows[0]["treatment_users"] + rows[1]["treatment_users"] == rep["metrics"][0]["treatment_users"]
    assert rows[0]["ci_low"] < 0 < rows[0]["ci_high"] and rows[1]["ci_low"] < 0.5 < rows[1]["ci_high"]
    assert rows[1]["ci_low"] > 0
    stored = report_rows(rep, "r1")
    assert stored["copy_variant"].isna().sum() == 1 and sorted(stored["copy_variant"].dropna()) == [0, 1]
    one = Campaign(name="y", start="2026-01-01", end="2026-02-01", boost_items=["i1"], copy_variants=1)
    assert campaign_report(one, pd.DataFrame({"user_id": users, "clicks": clicks}), n_boot=50)["variants"] == []
