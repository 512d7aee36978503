import pytest

from ml.registry.gate import GatePolicy

pytestmark = pytest.mark.unit

GOOD = {"ndcg@10": 0.30, "coverage@10": 0.40, "new_user_hit_rate@10": 0.20}


def test_first_model_is_promoted_when_guards_hold():
    d = GatePolicy().decide(GOOD, None)
    assert d.promote and "no champion yet" in d.reason


def test_margin_is_required_over_the_champion():
    champ = {"ndcg@10": 0.29, "coverage@10": 0.40}
    assert GatePolicy(margin=0.0).decide(GOOD, champ).promote
    d = GatePolicy(margin=0.05).decide(GOOD, champ)
    assert not d.promote
    assert "does not beat champion 0.2900 + margin 0.05" in d.reason
    assert d.checks["bar"] == pytest.approx(0.34)


def test_ties_promote_only_without_margin():
    champ = dict(GOOD)
    assert GatePolicy(margin=0.0).decide(GOOD, champ).promote
    assert not GatePolicy(margin=0.001).decide(GOOD, champ).promote


def test_guards_block_a_better_but_regressing_challenger():
    champ = {"ndcg@10": 0.10, "coverage@10": 0.90}
    d = GatePolicy(max_coverage_drop=0.2).decide(GOOD, champ)
    assert not d.promote and "regresses more than 0.2" in d.reason
    d = GatePolicy(min_coverage=0.5).decide(GOOD, None)
    assert not d.promote and "coverage@10 0.400 below guard 0.500" in d.reason
    d = GatePolicy(min_new_user_hit_rate=0.5).decide(GOOD, None)
    assert not d.promote and "new_user_hit_rate@10 0.200 below guard" in d.reason


def test_unmeasurable_new_user_guard_does_not_block():
    metrics = {"ndcg@10": 0.3, "coverage@10": 0.4}
    d = GatePolicy(min_new_user_hit_rate=0.1).decide(metrics, None)
    assert d.promote and "not measurable" in d.reason


def test_missing_primary_metric_is_rejected():
    assert not GatePolicy().decide({"coverage@10": 1.0}, None).promote


def test_policy_validates_its_settings():
    with pytest.raises(ValueError, match="margin"):
        GatePolicy(margin=-0.1)
    with pytest.raises(ValueError, match="min_coverage"):
        GatePolicy(min_coverage=2.0)
    with pytest.raises(ValueError, match="max_coverage_drop"):
        GatePolicy(max_coverage_drop=-1.0)
    with pytest.raises(ValueError, match="min_new_user_hit_rate"):
        GatePolicy(min_new_user_hit_rate=1.5)
