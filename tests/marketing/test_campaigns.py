import numpy as np
import pandas as pd
import pytest

from ml.marketing.campaigns import HOLDOUT, NONE, TREATMENT, Campaign, apply_campaign, arm, load_campaigns, uplift

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


def _candidates(n_users=40, n_items=20):
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{i}", float(rng.random())) for u in range(n_users) for i in range(n_items)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "score"])


ITEM_TAGS = pd.DataFrame({"item_id": [f"i{i}" for i in range(10)], "tag": "cat:sports_tents"})


def test_outside_the_window_nothing_changes():
    c = _candidates()
    out = apply_campaign(c, ITEM_TAGS, CAMP, pd.Timestamp("2026-11-01"), k=10)
    plain = c.sort_values(["user_id", "score"], ascending=[True, False]).groupby("user_id").head(10)
    assert set(zip(out["user_id"], out["item_id"], strict=True)) == set(
        zip(plain["user_id"], plain["item_id"], strict=True)
    )
    assert (out["campaign_arm"] == NONE).all() and not out["campaign_boosted"].any()


def test_inside_the_window_boost_is_capped_and_holdout_unchanged():
    c = _candidates()
    out = apply_campaign(c, ITEM_TAGS, CAMP, pd.Timestamp("2026-10-05"), k=10)
    assert (out.groupby("user_id").size() == 10).all()
    treat = out[out["campaign_arm"] == TREATMENT]
    boosted_per_user = treat.groupby("user_id")["campaign_boosted"].sum()
    assert boosted_per_user.max() == 3  # floor(0.3 * 10); boost 10x would otherwise fill more
    hold = out[out["campaign_arm"] == HOLDOUT]
    assert not hold["campaign_boosted"].any()
    for u, g in hold.groupby("user_id"):
        top = c[c["user_id"] == u].nlargest(10, "score")
        assert set(g["item_id"]) == set(top["item_id"])


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
