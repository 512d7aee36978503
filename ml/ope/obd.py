"""Off-policy evaluation on the Open Bandit Dataset (ZOZOTOWN, real logged bandit feedback).

Folder layout (the sample shipped in the ``obp==0.4.1`` wheel, or the full data set):
``<root>/{random,bts}/{all,men,women}/{<campaign>.csv,item_context.csv}`` plus the production
prior of the Bernoulli Thompson Sampling policy, ``prior_bts.yaml`` (see ``ml/data/obd.py``).

The experiment (as in the Open Bandit Pipeline's example): estimate the CTR of one policy (BTS or
Random) from the other policy's logs, and compare with the first policy's on-policy CTR in its own
logs. BTS is rebuilt from its prior: per item a Beta(alpha, beta); a slate ranks one draw per item,
so the position-wise action distribution is estimated by Monte Carlo (``n_sim`` slates; the
standard error of every probability is at most 0.5 / sqrt(n_sim)).

Every setting is fixed once, on the full log, before the runs and without the ground truth:

* the reward model: its kind (``pooled``: one logistic regression with slot dummies; or
  ``per-position``: one logistic regression per slot, the structure of OBP's ``RegressionModel``)
  and its ``C``, jointly, by 3-fold cross-validated log-loss of the logged clicks;
* switch-DR's ``tau`` and DRos's ``lambda``, by MSE_hat (``ml/ope/select.py``);
* the reported ("chosen") estimator, by the same rule among the DR family.

Each of ``runs`` runs then takes a bootstrap resample of the log, cross-fits the reward model of
the fixed kind and ``C`` (3 folds) and applies every estimator *with the fixed hyper-parameters*;
nothing is re-tuned inside a run. Rationale: the chosen estimator is one estimator with fixed
settings, as a user would deploy it, so the spread over runs measures that estimator's sampling
noise rather than the noise of re-running the selection. The relative error |V_hat - V| / V is
averaged over runs and the 95 % interval is the 2.5-97.5 percentile range of the run estimates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.ope.estimators import DRShrinkage, OffPolicyEstimator, RoundTerms, SwitchDR, bootstrap_counts
from ml.ope.reward_model import C_GRID, ConstantRewardModel, fit_logistic, folds, linear_parts, sigmoid
from ml.ope.select import choose, standard_estimators

POLICIES = ("random", "bts")
CAMPAIGNS = ("all", "men", "women")
# candidate reward models, in tie-break order (see ``choose_reward_model``)
REWARD_MODELS = ("pooled", "per-position")


@dataclass
class OBDLog:
    """One behaviour policy's log for one campaign.

    Shapes: ``reward``, ``action``, ``position`` (0-based), ``pscore``: (n,); ``context``:
    (n, d_x) one-hot user features; ``affinity``: (n, n_actions) log1p user-item affinity;
    ``action_context``: (n_actions, d_a) item features.
    """

    policy: str
    campaign: str
    reward: np.ndarray
    action: np.ndarray
    position: np.ndarray
    pscore: np.ndarray
    context: np.ndarray
    affinity: np.ndarray
    action_context: np.ndarray

    @property
    def n(self) -> int:
        return len(self.reward)

    @property
    def n_actions(self) -> int:
        return self.action_context.shape[0]

    @property
    def len_list(self) -> int:
        return int(self.position.max()) + 1

    def take(self, idx: np.ndarray) -> OBDLog:
        return OBDLog(
            self.policy,
            self.campaign,
            self.reward[idx],
            self.action[idx],
            self.position[idx],
            self.pscore[idx],
            self.context[idx],
            self.affinity[idx],
            self.action_context,
        )


def _check(policy: str, campaign: str) -> None:
    if policy not in POLICIES:
        raise ValueError(f"behaviour policy must be one of {POLICIES}, got {policy!r}")
    if campaign not in CAMPAIGNS:
        raise ValueError(f"campaign must be one of {CAMPAIGNS}, got {campaign!r}")


def load_log(root: Path, policy: str, campaign: str) -> OBDLog:
    """Read and pre-process ``<root>/<policy>/<campaign>/``; bad files raise naming the file."""
    _check(policy, campaign)
    folder = Path(root) / policy / campaign
    log_path, items_path = folder / f"{campaign}.csv", folder / "item_context.csv"
    for p in (log_path, items_path):
        if not p.exists():
            raise FileNotFoundError(f"Open Bandit Dataset file missing: {p} (run `python -m ml data fetch obd`)")
    df = pd.read_csv(log_path, index_col=0)
    need = {"timestamp", "item_id", "position", "click", "propensity_score"}
    missing = need - set(df.columns)
    if missing:
        raise ValueError(f"{log_path}: missing columns {sorted(missing)}")
    df = df.sort_values("timestamp", kind="stable").reset_index(drop=True)
    items = pd.read_csv(items_path, index_col=0).sort_values("item_id").reset_index(drop=True)
    n_actions = len(items)
    bad = df.index[(df["item_id"] < 0) | (df["item_id"] >= n_actions)]
    if len(bad):
        raise ValueError(f"{log_path}: rows {bad[:5].tolist()} have item_id outside 0..{n_actions - 1}")
    bad = df.index[~(df["propensity_score"] > 0)]
    if len(bad):
        raise ValueError(f"{log_path}: rows {bad[:5].tolist()} have a propensity_score that is not > 0")
    user_cols = [c for c in df.columns if c.startswith("user_feature")]
    context = pd.get_dummies(df[user_cols].astype(str), drop_first=True).to_numpy(np.float64)
    aff_cols = [f"user-item_affinity_{a}" for a in range(n_actions)]
    affinity = np.log1p(df[aff_cols].to_numpy(np.float64)) if set(aff_cols) <= set(df.columns) else None
    cat_cols = [c for c in items.columns if c.startswith("item_feature") and c != "item_feature_0"]
    item_cat = pd.get_dummies(items[cat_cols].astype(str), drop_first=True).to_numpy(np.float64)
    action_context = np.c_[item_cat, items[["item_feature_0"]].to_numpy(np.float64)]
    position = pd.Series(df["position"]).rank(method="dense").to_numpy(np.int64) - 1
    return OBDLog(
        policy=policy,
        campaign=campaign,
        reward=df["click"].to_numpy(np.float64),
        action=df["item_id"].to_numpy(np.int64),
        position=position,
        pscore=df["propensity_score"].to_numpy(np.float64),
        context=context,
        affinity=affinity if affinity is not None else np.zeros((len(df), n_actions)),
        action_context=action_context,
    )


def on_policy_value(root: Path, policy: str, campaign: str) -> float:
    """The policy's CTR in its own log: the ground truth of the experiment."""
    return float(load_log(root, policy, campaign).reward.mean())


def load_prior(path: Path, campaign: str) -> tuple[np.ndarray, np.ndarray]:
    """BTS's production prior (alpha, beta), each of shape (n_actions,)."""
    import yaml

    conf = yaml.safe_load(Path(path).read_text())
    if campaign not in conf:
        raise ValueError(f"{path}: no prior for campaign {campaign!r}")
    alpha = np.asarray(conf[campaign]["alpha"], dtype=np.float64)
    beta = np.asarray(conf[campaign]["beta"], dtype=np.float64)
    if alpha.shape != beta.shape or (alpha <= 0).any() or (beta <= 0).any():
        raise ValueError(f"{path}: campaign {campaign!r} prior must hold positive alpha/beta lists of equal length")
    return alpha, beta


def bts_action_dist(
    alpha: np.ndarray, beta: np.ndarray, len_list: int, n_sim: int = 1_000_000, random_state: int = 12345
) -> np.ndarray:
    """Position-wise action distribution of Bernoulli TS, shape (n_actions, len_list).

    Each simulated slate draws theta_a ~ Beta(alpha_a, beta_a) and shows the ``len_list`` largest
    in order; entries are frequencies over ``n_sim`` slates (standard error <= 0.5/sqrt(n_sim))."""
    rng = np.random.default_rng(random_state)
    n_actions = len(alpha)
    counts = np.zeros((n_actions, len_list))
    chunk = 50_000
    done = 0
    while done < n_sim:
        m = min(chunk, n_sim - done)
        theta = rng.beta(alpha, beta, size=(m, n_actions))
        top = np.argpartition(-theta, len_list - 1, axis=1)[:, :len_list]
        order = np.argsort(-np.take_along_axis(theta, top, axis=1), axis=1)
        ranked = np.take_along_axis(top, order, axis=1)
        for k in range(len_list):
            counts[:, k] += np.bincount(ranked[:, k], minlength=n_actions)
        done += m
    return counts / n_sim


def random_action_dist(n_actions: int, len_list: int) -> np.ndarray:
    """Uniform random slates without repetition: every item has probability 1/n_actions per slot."""
    return np.full((n_actions, len_list), 1.0 / n_actions)


class OBDRewardModel:
    """Logistic regression on [user one-hot, item features, log1p affinity(user, item), slot one-hot].

    The model is additive in its features, so predictions for every (round, item, slot) are
    computed from the coefficients without materialising the (n, n_actions, len_list, d) design."""

    kind = "pooled"

    def __init__(self, C: float = 1.0, random_state: int = 0):
        self.C = C
        self.random_state = random_state

    @staticmethod
    def design(log: OBDLog) -> np.ndarray:
        """Logged-round design matrix, shape (n, d_x + d_a + 1 + len_list - 1)."""
        L = log.len_list
        pos = np.eye(L)[log.position][:, 1:]
        aff = log.affinity[np.arange(log.n), log.action][:, None]
        return np.c_[log.context, log.action_context[log.action], aff, pos]

    def fit(self, log: OBDLog) -> OBDRewardModel:
        X = self.design(log)
        self.model_ = fit_logistic(X, log.reward, self.C, self.random_state)
        self.coef_, self.intercept_ = linear_parts(self.model_, X.shape[1])
        self.len_list_ = log.len_list
        return self

    def predict_logged(self, log: OBDLog) -> np.ndarray:
        """q(x_i, a_i, k_i) at the logged item and slot, shape (n,)."""
        dx, da = log.context.shape[1], log.action_context.shape[1]
        w = self.coef_
        pos = np.r_[0.0, w[dx + da + 1 :]]
        aff = log.affinity[np.arange(log.n), log.action]
        logit = (
            self.intercept_
            + log.context @ w[:dx]
            + log.action_context[log.action] @ w[dx : dx + da]
            + aff * w[dx + da]
            + pos[log.position]
        )
        return sigmoid(logit)

    def predict_all(self, log: OBDLog) -> np.ndarray:
        """q(x_i, a, k) for every round, item and slot: shape (n, n_actions, len_list)."""
        dx, da = log.context.shape[1], log.action_context.shape[1]
        w = self.coef_
        user = log.context @ w[:dx]  # (n,)
        item = log.action_context @ w[dx : dx + da]  # (A,)
        aff = log.affinity * w[dx + da]  # (n, A)
        pos = np.r_[0.0, w[dx + da + 1 :]][: self.len_list_]  # (L,)
        logit = self.intercept_ + user[:, None, None] + item[None, :, None] + aff[:, :, None] + pos[None, None, :]
        return sigmoid(logit)


class PerPositionRewardModel:
    """One logistic regression per slot, as OBP's ``RegressionModel`` (``len_list`` base models).

    Features of a (round, item) pair at slot k: the user context ``[user one-hot, log1p user-item
    affinity to every item]`` followed by the item features, i.e. OBP's
    ``np.c_[context, action_context[action]]``. The model is additive in user and item parts, so
    predictions are computed from the coefficients without materialising (n, n_actions, len_list, d)."""

    kind = "per-position"

    def __init__(self, C: float = 1.0, random_state: int = 0):
        self.C = C
        self.random_state = random_state

    @staticmethod
    def design(log: OBDLog) -> np.ndarray:
        """Logged-round features (slot not included), shape (n, d_x + n_actions + d_a)."""
        return np.c_[log.context, log.affinity, log.action_context[log.action]]

    def fit(self, log: OBDLog) -> PerPositionRewardModel:
        X = self.design(log)
        L = log.len_list
        self.coef_ = np.zeros((L, X.shape[1]))
        self.intercept_ = np.zeros(L)
        overall = ConstantRewardModel((log.reward.sum() + 0.5) / (log.n + 1.0))
        for k in range(L):
            idx = log.position == k
            m = fit_logistic(X[idx], log.reward[idx], self.C, self.random_state) if idx.any() else overall
            self.coef_[k], self.intercept_[k] = linear_parts(m, X.shape[1])
        self.len_list_ = L
        return self

    def predict_logged(self, log: OBDLog) -> np.ndarray:
        """q(x_i, a_i, k_i) at the logged item and slot, shape (n,)."""
        k = log.position
        return sigmoid(np.einsum("nd,nd->n", self.design(log), self.coef_[k]) + self.intercept_[k])

    def predict_all(self, log: OBDLog) -> np.ndarray:
        """q(x_i, a, k) for every round, item and slot: shape (n, n_actions, len_list)."""
        dx, A = log.context.shape[1], log.n_actions
        W = self.coef_  # (L, d)
        user = log.context @ W[:, :dx].T + log.affinity @ W[:, dx : dx + A].T  # (n, L)
        item = log.action_context @ W[:, dx + A :].T  # (A, L)
        return sigmoid(self.intercept_[None, None, :] + user[:, None, :] + item[None, :, :])


def make_reward_model(kind: str, C: float, random_state: int = 0) -> OBDRewardModel | PerPositionRewardModel:
    if kind == "pooled":
        return OBDRewardModel(C, random_state)
    if kind == "per-position":
        return PerPositionRewardModel(C, random_state)
    raise ValueError(f"reward model must be one of {REWARD_MODELS}, got {kind!r}")


def choose_reward_model(
    log: OBDLog,
    kinds: tuple[str, ...] = REWARD_MODELS,
    grid: tuple[float, ...] = C_GRID,
    n_folds: int = 3,
    random_state: int = 0,
) -> tuple[str, float, dict[str, dict[str, float]]]:
    """(kind, C) with the lowest cross-validated log-loss of the logged clicks (no ground truth).

    Every candidate is scored on the same folds; the loss is per round. Ties go to the earlier
    kind, then the earlier C. Returns (kind, C, {kind: {str(C): mean log-loss}})."""
    if len(np.unique(log.reward)) < 2 or log.n < 2 * n_folds:
        return kinds[0], float(grid[len(grid) // 2]), {}
    fid = folds(log.n, n_folds, random_state)
    losses: dict[str, dict[str, float]] = {}
    best: tuple[float, str, float] | None = None
    for kind in kinds:
        losses[kind] = {}
        for c in grid:
            loss = 0.0
            for f in range(n_folds):
                te, tr = np.flatnonzero(fid == f), np.flatnonzero(fid != f)
                m = make_reward_model(kind, c, random_state).fit(log.take(tr))
                test = log.take(te)
                p = np.clip(m.predict_logged(test), 1e-9, 1 - 1e-9)
                loss -= float(np.sum(test.reward * np.log(p) + (1 - test.reward) * np.log(1 - p)))
            losses[kind][f"{c:g}"] = loss / log.n
            if best is None or loss < best[0]:
                best = (loss, kind, float(c))
    assert best is not None
    return best[1], best[2], losses


def cross_fit_rewards(
    log: OBDLog, C: float, n_folds: int = 3, random_state: int = 0, kind: str = "pooled"
) -> np.ndarray:
    """Cross-fitted q of shape (n, n_actions, len_list): each round predicted by a model not fit on it."""
    fid = folds(log.n, n_folds, random_state)
    out = np.empty((log.n, log.n_actions, log.len_list))
    for f in range(n_folds):
        te = np.flatnonzero(fid == f)
        tr = np.flatnonzero(fid != f)
        m = make_reward_model(kind, C, random_state).fit(log.take(tr))
        out[te] = m.predict_all(log.take(te))
    return out


def evaluation_dist(policy: str, campaign: str, n_actions: int, len_list: int, prior: Path, n_sim: int) -> np.ndarray:
    if policy == "bts":
        alpha, beta = load_prior(prior, campaign)
        if len(alpha) != n_actions:
            raise ValueError(f"{prior}: campaign {campaign!r} prior has {len(alpha)} items, the log has {n_actions}")
        return bts_action_dist(alpha, beta, len_list, n_sim)
    return random_action_dist(n_actions, len_list)


def run_experiment(
    root: Path,
    prior: Path,
    campaign: str = "all",
    behavior: str = "random",
    runs: int = 30,
    n_sim: int = 1_000_000,
    n_bootstrap: int = 200,
    random_state: int = 12345,
) -> dict[str, Any]:
    """Estimate the other policy's CTR from ``behavior``'s log; see the module docstring.

    Returns ``{"ground_truth", "chosen", "estimators": {name: {mean_estimate, mean_relative_error,
    ci_low, ci_high}}}`` plus, under ``"details"``, the per-run estimates and the settings."""
    _check(behavior, campaign)
    evaluation = "bts" if behavior == "random" else "random"
    log = load_log(root, behavior, campaign)
    truth = on_policy_value(root, evaluation, campaign)
    dist = evaluation_dist(evaluation, campaign, log.n_actions, log.len_list, prior, n_sim)
    # every setting is fixed once on the full log (no ground truth involved): reward model kind and C
    # by CV log-loss, switch-DR's tau and DRos's lambda by MSE_hat, the chosen estimator by the rule
    kind, C, cv_loss = choose_reward_model(log, random_state=random_state)
    full = _terms(log, dist, kind, C, random_state)
    counts = bootstrap_counts(full.n, n_bootstrap, random_state)
    fixed = standard_estimators(full, counts)
    chosen, mse = choose(fixed, full, counts)
    truth_log = load_log(root, evaluation, campaign)
    by_position = {
        "ground_truth": {int(k): float(truth_log.reward[truth_log.position == k].mean()) for k in range(log.len_list)},
        **{name: est.estimate_by_position(full) for name, est in fixed.items()},
    }
    per_run: dict[str, list[float]] = {name: [] for name in fixed}
    for b in range(runs):
        rng = np.random.default_rng(random_state + b)
        boot = log.take(rng.integers(0, log.n, log.n))
        t = _terms(boot, dist, kind, C, random_state + b)
        for name, est in fixed.items():  # the same estimators, hyper-parameters included, in every run
            per_run[name].append(est.estimate(t))
    estimators = {}
    for name, vals in per_run.items():
        v = np.asarray(vals)
        lo, hi = np.quantile(v, [0.025, 0.975])
        estimators[name] = {
            "mean_estimate": float(v.mean()),
            "mean_relative_error": float(np.mean(np.abs(v - truth) / truth)),
            "ci_low": float(lo),
            "ci_high": float(hi),
        }
    return {
        "ground_truth": truth,
        "chosen": chosen,
        "estimators": estimators,
        "details": {
            "campaign": campaign,
            "behavior_policy": behavior,
            "evaluation_policy": evaluation,
            "n_rounds": log.n,
            "n_actions": log.n_actions,
            "len_list": log.len_list,
            "runs": runs,
            "n_sim": n_sim,
            "mc_max_std_error": 0.5 / np.sqrt(n_sim) if evaluation == "bts" else 0.0,
            "reward_model": kind,
            "reward_model_C": C,
            "reward_model_cv_log_loss": cv_loss,
            "hyperparameters": fixed_hyperparameters(fixed, kind, C),
            "estimator_labels": {name: est.label for name, est in fixed.items()},
            "chosen_label": fixed[chosen].label,
            "logged_ctr": float(log.reward.mean()),
            "estimated_mse_full_log": {k: m.mse for k, m in mse.items()},
            "by_position_full_log": by_position,
            "per_run_estimates": per_run,
        },
    }


def _json_number(x: float) -> float | str:
    """Floats for JSON: ``inf`` (tau or lambda meaning "no clipping / no shrinkage") as a string."""
    return "inf" if np.isinf(x) else float(x)


def fixed_hyperparameters(estimators: dict[str, OffPolicyEstimator], kind: str, C: float) -> dict[str, Any]:
    """The settings fixed on the full log and used unchanged in every run."""
    out: dict[str, Any] = {"reward_model": {"kind": kind, "C": C}}
    switch, dros = estimators.get("switch-dr"), estimators.get("dros")
    if isinstance(switch, SwitchDR):
        out["switch-dr"] = {"tau": _json_number(switch.tau)}
    if isinstance(dros, DRShrinkage):
        out["dros"] = {"lambda": _json_number(dros.lambda_)}
    return out


def _terms(log: OBDLog, dist: np.ndarray, kind: str, C: float, random_state: int) -> RoundTerms:
    q = cross_fit_rewards(log, C, 3, random_state, kind)
    pi_e = dist[log.action, log.position]
    rows = np.arange(log.n)
    q_logged = q[rows, log.action, log.position]
    q_policy = np.einsum("nak,ak->nk", q, dist)[rows, log.position]
    return RoundTerms(log.reward, pi_e / log.pscore, log.position, q_logged, q_policy)
