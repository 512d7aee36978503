"""Reward models for the model-based estimators (DM, DR and its variants).

A reward model is a logistic regression of the reward (click) on context x action x slot
features; for a reward that is not 0/1 (revenue) it is a hurdle model, the logistic regression of
"reward > 0" times the mean positive reward (``fit_reward_model``). Its regularisation ``C`` is picked by cross-validated log-loss on the log itself (never
against a ground truth), and the doubly robust family uses *cross-fitting*: each round's
prediction comes from a model fitted on the other folds, as in the Open Bandit Pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

C_GRID: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)


class ConstantRewardModel:
    """Fallback when a fold holds a single reward class: predicts the (smoothed) fold mean."""

    def __init__(self, rate: float):
        self.rate = rate

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        p = float(np.clip(self.rate, 1e-6, 1 - 1e-6))
        return np.full(X.shape[0], np.log(p / (1 - p)))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = np.full(X.shape[0], float(np.clip(self.rate, 1e-6, 1 - 1e-6)))
        return np.c_[1 - p, p]


def fit_logistic(X: np.ndarray, y: np.ndarray, C: float = 1.0, random_state: int = 0) -> Any:
    """Logistic regression of y (0/1, shape (n,)) on X (n, d); a constant model if y has one class."""
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(y)
    if len(np.unique(y)) < 2:
        return ConstantRewardModel((y.sum() + 0.5) / (len(y) + 1.0))
    return LogisticRegression(C=C, max_iter=2000, random_state=random_state).fit(X, y)


class HurdleRewardModel:
    """Expected reward = P(reward > 0 | x) x ``value``, the mean positive reward of the fit data.

    For a 0/1 reward ``value`` is 1 and this is the classifier itself; for revenue, where most
    rounds earn nothing, the classifier carries the context and slot, ``value`` the scale (a
    purchase's amount is not modelled per item: the doubly robust estimators' importance-weighted
    residual corrects what the model misses)."""

    def __init__(self, classifier: Any, value: float):
        self.classifier = classifier
        self.value = value

    def expected(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.classifier.predict_proba(X)[:, 1], dtype=np.float64) * self.value


def fit_reward_model(X: np.ndarray, y: np.ndarray, C: float = 1.0, random_state: int = 0) -> HurdleRewardModel:
    """The :class:`HurdleRewardModel` of a non-negative reward y (n,) on X (n, d)."""
    y = np.asarray(y, dtype=np.float64)
    positive = y > 0
    value = float(y[positive].mean()) if positive.any() else 1.0
    return HurdleRewardModel(fit_logistic(X, positive.astype(np.int64), C, random_state), value)


def folds(n: int, n_folds: int, random_state: int = 0) -> np.ndarray:
    """A fold id in [0, n_folds) for each of n rounds (shuffled, balanced)."""
    rng = np.random.default_rng(random_state)
    return rng.permutation(np.arange(n) % max(n_folds, 1))


def choose_c(
    X: np.ndarray, y: np.ndarray, grid: Sequence[float] = C_GRID, n_folds: int = 3, random_state: int = 0
) -> float:
    """The grid value of C with the lowest cross-validated log-loss of "y > 0" (no ground truth used)."""
    y = (np.asarray(y, dtype=np.float64) > 0).astype(np.int64)
    if len(np.unique(y)) < 2 or len(y) < 2 * n_folds:
        return float(grid[len(grid) // 2])
    fid = folds(len(y), n_folds, random_state)
    best_c, best_loss = float(grid[0]), np.inf
    for c in grid:
        loss = 0.0
        for f in range(n_folds):
            tr, te = fid != f, fid == f
            m = fit_logistic(X[tr], y[tr], c, random_state)
            p = np.clip(m.predict_proba(X[te])[:, 1], 1e-9, 1 - 1e-9)
            loss -= float(np.sum(y[te] * np.log(p) + (1 - y[te]) * np.log(1 - p)))
        if loss < best_loss:
            best_c, best_loss = float(c), loss
    return best_c


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def linear_parts(model: Any, n_features: int) -> tuple[np.ndarray, float]:
    """(coefficients of shape (d,), intercept) of a fitted logistic model, for decomposed scoring."""
    if isinstance(model, ConstantRewardModel):
        return np.zeros(n_features), float(model.decision_function(np.zeros((1, n_features)))[0])
    return np.asarray(model.coef_[0], dtype=np.float64), float(model.intercept_[0])
