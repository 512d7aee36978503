"""The Open Bandit Dataset experiment on a small folder in the real OBD layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.ope import obd

pytestmark = pytest.mark.unit

N_ITEMS = 4


def _write_campaign(root: Path, policy: str, campaign: str, n: int, seed: int, ctr: float) -> None:
    rng = np.random.default_rng(seed)
    folder = root / policy / campaign
    folder.mkdir(parents=True)
    rows = {
        "timestamp": pd.date_range("2019-11-24", periods=n, freq="min", tz="UTC").astype(str),
        "item_id": rng.integers(0, N_ITEMS, n),
        "position": rng.integers(1, 4, n),
        "click": (rng.random(n) < ctr).astype(int),
        "propensity_score": np.full(n, 1.0 / N_ITEMS) if policy == "random" else rng.uniform(0.05, 0.9, n),
        "user_feature_0": rng.choice(["a", "b", "c"], n),
        "user_feature_1": rng.choice(["x", "y"], n),
    }
    for i in range(N_ITEMS):
        rows[f"user-item_affinity_{i}"] = rng.integers(0, 3, n).astype(float)
    pd.DataFrame(rows).to_csv(folder / f"{campaign}.csv")
    pd.DataFrame(
        {
            "item_id": range(N_ITEMS),
            "item_feature_0": rng.normal(size=N_ITEMS),
            "item_feature_1": ["p", "q", "p", "r"],
            "item_feature_2": ["s", "s", "t", "t"],
        }
    ).to_csv(folder / "item_context.csv")


@pytest.fixture()
def obd_root(tmp_path: Path) -> Path:
    for policy, ctr in (("random", 0.05), ("bts", 0.08)):
        for j, campaign in enumerate(obd.CAMPAIGNS):
            _write_campaign(tmp_path, policy, campaign, 600, seed=10 * j + len(policy), ctr=ctr)
    (tmp_path / "prior_bts.yaml").write_text(
        "\n".join(f"{c}:\n  alpha: [2.0, 1.0, 1.0, 5.0]\n  beta: [10.0, 10.0, 3.0, 30.0]" for c in obd.CAMPAIGNS)
    )
    return tmp_path


def test_loader_preprocesses_positions_features_and_affinity(obd_root):
    log = obd.load_log(obd_root, "random", "all")
    assert log.n == 600 and log.n_actions == N_ITEMS and log.len_list == 3
    assert set(np.unique(log.position)) == {0, 1, 2}
    assert log.context.shape == (600, 3)  # one-hot, first level dropped: 2 + 1
    assert log.affinity.shape == (600, N_ITEMS) and (log.affinity >= 0).all()
    assert log.action_context.shape[0] == N_ITEMS


def test_loader_names_the_file_and_rows_with_bad_propensities(obd_root):
    path = obd_root / "bts" / "men" / "men.csv"
    df = pd.read_csv(path, index_col=0)
    df.loc[3, "propensity_score"] = 0.0
    df.to_csv(path)
    with pytest.raises(ValueError, match=r"men\.csv.*propensity_score"):
        obd.load_log(obd_root, "bts", "men")
    with pytest.raises(FileNotFoundError, match="data fetch obd"):
        obd.load_log(obd_root / "nowhere", "bts", "men")


def test_bts_action_distribution_is_a_distribution_per_slot_and_matches_theory():
    # two items: theta0 ~ Beta(2, 1), theta1 ~ Beta(1, 1): P(item 0 ranked first) = 2/3 exactly
    n_sim = 200_000
    d = obd.bts_action_dist(np.array([2.0, 1.0]), np.array([1.0, 1.0]), 2, n_sim=n_sim, random_state=0)
    assert d.sum(axis=0) == pytest.approx([1.0, 1.0])
    se = np.sqrt((2 / 3) * (1 / 3) / n_sim)
    assert abs(d[0, 0] - 2 / 3) < 4 * se
    assert d[0, 1] == pytest.approx(d[1, 0])


def test_experiment_writes_the_documented_shape(obd_root):
    res = obd.run_experiment(
        obd_root, obd_root / "prior_bts.yaml", "men", "random", runs=3, n_sim=20_000, n_bootstrap=50
    )
    assert res["ground_truth"] == pytest.approx(obd.on_policy_value(obd_root, "bts", "men"))
    assert res["chosen"] in res["estimators"]
    for r in res["estimators"].values():
        assert set(r) == {"mean_estimate", "mean_relative_error", "ci_low", "ci_high"}
        assert r["ci_low"] <= r["mean_estimate"] <= r["ci_high"] or r["ci_low"] == pytest.approx(r["ci_high"])
        assert r["mean_relative_error"] >= 0
    json.dumps(res)  # serialisable as written by the bench


def test_reverse_direction_evaluates_the_uniform_policy(obd_root):
    res = obd.run_experiment(obd_root, obd_root / "prior_bts.yaml", "women", "bts", runs=2, n_sim=1_000, n_bootstrap=50)
    assert res["details"]["evaluation_policy"] == "random"
    assert res["ground_truth"] == pytest.approx(obd.on_policy_value(obd_root, "random", "women"))


def test_fetch_uses_a_local_folder_and_names_what_is_missing(obd_root, tmp_path):
    from ml.data.obd import fetch, prior_path

    assert fetch(obd_root, tmp_path / "cache") == obd_root
    assert prior_path(obd_root).name == "prior_bts.yaml"
    with pytest.raises(FileNotFoundError, match="not an Open Bandit Dataset folder"):
        fetch(tmp_path / "empty", tmp_path / "cache")


def _interaction_log(n: int = 3000, seed: int = 0) -> obd.OBDLog:
    """Clicks depend on item x slot (item 0 is good at slot 0 only, item 3 at slot 2 only)."""
    rng = np.random.default_rng(seed)
    action = rng.integers(0, N_ITEMS, n)
    position = rng.integers(0, 3, n)
    p = np.full((N_ITEMS, 3), 0.05)
    p[0, 0] = p[3, 2] = 0.6
    reward = (rng.random(n) < p[action, position]).astype(np.float64)
    return obd.OBDLog(
        policy="random",
        campaign="all",
        reward=reward,
        action=action,
        position=position,
        pscore=np.full(n, 1.0 / N_ITEMS),
        context=np.eye(3)[rng.integers(0, 3, n)][:, 1:],
        affinity=np.log1p(rng.integers(0, 3, (n, N_ITEMS)).astype(np.float64)),
        action_context=np.eye(N_ITEMS)[:, 1:],
    )


@pytest.mark.parametrize("kind", obd.REWARD_MODELS)
def test_reward_models_predict_without_materialising_the_design(kind):
    # the decomposed predictions equal the fitted logistic regressions on explicit feature rows
    log = _interaction_log(900)
    m = obd.make_reward_model(kind, 1.0).fit(log)
    q = m.predict_all(log)
    assert q.shape == (log.n, log.n_actions, log.len_list) and ((q > 0) & (q < 1)).all()
    rows = np.arange(log.n)
    assert m.predict_logged(log) == pytest.approx(q[rows, log.action, log.position])
    # every (item, slot) of round 0, scored by the underlying sklearn model(s)
    for a in range(log.n_actions):
        for k in range(log.len_list):
            one = log.take(np.array([0]))
            one.action[:], one.position[:] = a, k
            if kind == "pooled":
                x = np.c_[one.context, one.action_context[[a]], one.affinity[[0], [a]][:, None], np.eye(3)[[k]][:, 1:]]
                ref = m.model_.predict_proba(x)[0, 1]
            else:
                ref = obd.fit_logistic(
                    obd.PerPositionRewardModel.design(log)[log.position == k], log.reward[log.position == k], 1.0
                ).predict_proba(obd.PerPositionRewardModel.design(one))[0, 1]
            assert q[0, a, k] == pytest.approx(ref, rel=1e-6)


def test_reward_model_choice_is_the_lowest_cross_validated_log_loss():
    log = _interaction_log()
    kind, C, losses = obd.choose_reward_model(log, random_state=3)
    assert set(losses) == set(obd.REWARD_MODELS)
    best = min((loss, k, float(c)) for k, by_c in losses.items() for c, loss in by_c.items())
    assert (kind, C) == (best[1], best[2])
    # slot x item interaction: only one model per slot can express it, and CV log-loss sees that
    assert kind == "per-position"
    # with the pooled model alone the rule reduces to the former choice of C
    from ml.ope.reward_model import choose_c

    pooled_c = obd.choose_reward_model(log, kinds=("pooled",), random_state=3)[1]
    assert pooled_c == choose_c(obd.OBDRewardModel.design(log), log.reward, random_state=3)


def test_hyperparameters_are_fixed_on_the_full_log_recorded_and_kept_in_every_run(obd_root, monkeypatch):
    calls = []
    real = obd.standard_estimators
    monkeypatch.setattr(obd, "standard_estimators", lambda *a, **k: calls.append(1) or real(*a, **k))
    res = obd.run_experiment(
        obd_root, obd_root / "prior_bts.yaml", "all", "random", runs=3, n_sim=20_000, n_bootstrap=50
    )
    assert len(calls) == 1  # tuned once, on the full log; never inside a run
    d = res["details"]
    hp = d["hyperparameters"]
    assert hp["reward_model"] == {"kind": d["reward_model"], "C": d["reward_model_C"]}
    assert d["reward_model"] in obd.REWARD_MODELS and d["reward_model_cv_log_loss"]
    tau, lam = hp["switch-dr"]["tau"], hp["dros"]["lambda"]
    assert d["estimator_labels"]["switch-dr"] == f"switch-dr(tau={float(tau):g})"
    assert d["estimator_labels"]["dros"] == f"dros(lambda={float(lam):g})"
    assert d["chosen_label"] == d["estimator_labels"][res["chosen"]]
    json.dumps(d, allow_nan=False)  # inf is recorded as "inf"
    # every run applies exactly these estimators to its resample
    from ml.ope.estimators import DRShrinkage, SwitchDR

    log = obd.load_log(obd_root, "random", "all")
    dist = obd.evaluation_dist("bts", "all", log.n_actions, log.len_list, obd_root / "prior_bts.yaml", 20_000)
    seed = 12345
    for b in range(3):
        boot = log.take(np.random.default_rng(seed + b).integers(0, log.n, log.n))
        t = obd._terms(boot, dist, d["reward_model"], d["reward_model_C"], seed + b)
        assert d["per_run_estimates"]["switch-dr"][b] == pytest.approx(SwitchDR(tau=float(tau)).estimate(t))
        assert d["per_run_estimates"]["dros"][b] == pytest.approx(DRShrinkage(lambda_=float(lam)).estimate(t))
    est = res["estimators"]["dros"]
    assert est["mean_estimate"] == pytest.approx(np.mean(d["per_run_estimates"]["dros"]))
