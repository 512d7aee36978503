"""Slate policies over interest tags (level 1); items within a tag are taken best first (level 2).

A policy turns a :class:`~ml.explore.context.SlateContext` into per-slot tag choices. The shared
sampler (``ml.explore.slate``) fills the k slots one by one: at each slot the policy picks a tag
among those with items left, and the tag's next item is shown. A tag's value at a slot is
multiplied by ``diversity ** u`` (u = earlier uses in the slate: diminishing returns, so a slate
mixes tags) and by the score of its next item (level 2: stale or weak items lower their tag). A slot counts as *exploration* when the policy's pick differs from the greedy pick (the
highest posterior mean, with the same diminishing returns) or, for the slot allocator, when it is
one of the reserved slots spent on a candidate tag.

scikit-learn conventions: ``__init__`` stores hyper-parameters only, ``fit`` (a batch update
from feedback rows shaped like ``marts.bandit_feedback``) returns ``self``, learned attributes end
in ``_``. Per-user x tag counts live in the context (see ``ml.explore.candidates``); ``fit`` learns
what is shared across users (the linear models' weights).
"""

from __future__ import annotations

import functools
import json
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ml.explore import columns as C
from ml.explore.context import FEATURES, POSTERIOR_MEAN_FEATURE, ContextColumns, SlateContext
from ml.explore.defaults import DEFAULT_EXPLORATION_BUDGET, DEFAULT_MIN_SESSIONS
from ml.explore.reward import Learning

NEG = -np.inf


class SlatePolicy(ABC):
    """Interface of every policy. ``deterministic`` policies show one slate with propensity 1."""

    name: ClassVar[str] = "base"
    deterministic: ClassVar[bool] = False
    # the feedback columns ``fit`` reads (publishing reads no others for it)
    feedback_columns: ClassVar[tuple[str, ...]] = ()

    def __init__(self, diversity: float = 0.8):
        self.diversity = diversity

    def get_params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.endswith("_")}

    def fit(self, feedback: pd.DataFrame, learning: Learning = Learning()) -> SlatePolicy:
        """Batch update from feedback rows (one per shown slot, with ``clicked`` and the column of
        ``learning``'s reward, what the policy learns from); returns self."""
        self.n_feedback_ = len(feedback)
        return self

    def exploit_values(self, ctx: SlateContext) -> np.ndarray:
        """Greedy value per tag, shape (T,): the posterior mean click probability."""
        return ctx.posterior_mean()

    def exploit_columns(self, cols: ContextColumns) -> np.ndarray:
        """:meth:`exploit_values` of every arm row of many contexts given as columns."""
        return cols.posterior_mean()

    def column_values(self, cols: ContextColumns) -> tuple[np.ndarray, np.ndarray] | None:
        """Per arm of many contexts given as columns: (draw value, greedy value), equal to what
        ``draw_values`` (one draw) and ``exploit_values`` give context by context; None when the
        policy has no whole-array form (then contexts are read one at a time)."""
        return None

    @abstractmethod
    def draw_values(self, ctx: SlateContext, rng: np.random.Generator, n_draws: int) -> np.ndarray:
        """Per-slate tag values for ``n_draws`` independent slates, shape (n_draws, T)."""

    def choose(
        self,
        ctx: SlateContext,
        slot: int,
        k: int,
        values: np.ndarray,
        exploit: np.ndarray,
        avail: np.ndarray,
        decay: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Tag index per draw at ``slot`` (0-based) and whether it is exploration, both (R,).

        ``avail`` (R, T) marks tags with items left, ``decay`` (R, T) is the slot factor:
        diversity ** uses x the next item's score."""
        chosen = _argmax(values * decay, avail)
        greedy = _argmax(exploit[None, :] * decay, avail)
        return chosen, chosen != greedy


def _argmax(v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.argmax(np.where(mask, v, NEG), axis=1)


class Greedy(SlatePolicy):
    """Pure exploitation: the tag with the highest posterior mean (no exploration)."""

    name: ClassVar[str] = "greedy"
    deterministic: ClassVar[bool] = True

    def draw_values(self, ctx: SlateContext, rng: np.random.Generator, n_draws: int) -> np.ndarray:
        return np.broadcast_to(self.exploit_values(ctx), (n_draws, ctx.n_tags))

    def column_values(self, cols: ContextColumns) -> tuple[np.ndarray, np.ndarray] | None:
        if (
            type(self).exploit_values is not SlatePolicy.exploit_values
            or type(self).draw_values is not Greedy.draw_values
        ):
            return None  # (a subclass with values of its own)
        mean = cols.posterior_mean()
        return mean, mean


class EpsilonGreedy(SlatePolicy):
    """Greedy, except that each slot with probability ``epsilon`` shows a uniformly random tag."""

    name: ClassVar[str] = "epsilon_greedy"

    def __init__(self, epsilon: float = 0.1, diversity: float = 0.8):
        self.epsilon = epsilon
        self.diversity = diversity

    def draw_values(self, ctx: SlateContext, rng: np.random.Generator, n_draws: int) -> np.ndarray:
        return np.broadcast_to(self.exploit_values(ctx), (n_draws, ctx.n_tags))

    def choose(self, ctx, slot, k, values, exploit, avail, decay, rng):  # type: ignore[no-untyped-def]
        greedy = _argmax(exploit[None, :] * decay, avail)
        coin = rng.random(len(avail)) < self.epsilon
        random_tag = _argmax(rng.random(avail.shape), avail)
        chosen = np.where(coin, random_tag, greedy)
        return chosen, chosen != greedy


class UCB1(SlatePolicy):
    """Upper confidence bound: mean + c * sqrt(2 ln N / n) with n the tag's pseudo-count
    (prior strength + examined impressions) and N the user's total (deterministic). Classic UCB1
    has c = 1 for rewards spread over [0, 1]; clicks are rare (variance ~0.1, not 0.25), so the
    default c scales the bonus to click-through rates."""

    name: ClassVar[str] = "ucb1"
    deterministic: ClassVar[bool] = True

    def __init__(self, c: float = 0.1, diversity: float = 0.8):
        self.c = c
        self.diversity = diversity

    def draw_values(self, ctx: SlateContext, rng: np.random.Generator, n_draws: int) -> np.ndarray:
        a, b = ctx.posterior()
        n = a + b
        bonus = self.c * np.sqrt(2.0 * np.log(n.sum() + 1.0) / np.maximum(n, 1e-9))
        return np.broadcast_to(a / n + bonus, (n_draws, ctx.n_tags))


class ThompsonSampling(SlatePolicy):
    """Beta-Bernoulli Thompson sampling: one posterior draw per tag per slate."""

    name: ClassVar[str] = "thompson"

    def draw_values(self, ctx: SlateContext, rng: np.random.Generator, n_draws: int) -> np.ndarray:
        a, b = ctx.posterior()
        return rng.beta(a, b, size=(n_draws, ctx.n_tags))


class _Linear(SlatePolicy):
    """Ridge regression of clicks on user x tag features, position-debiased (a click at slot p
    is modelled as e_p * x.theta, e_p the slot's examination weight). The prior mean of theta
    puts weight 1 on the Beta posterior mean feature, so with no data the linear value equals
    the Beta policies' mean."""

    def __init__(self, l2: float = 50.0, diversity: float = 0.8):
        self.l2 = l2
        self.diversity = diversity

    feedback_columns: ClassVar[tuple[str, ...]] = (C.ARM_FEATURES, C.POSITION, C.CLICKED)

    def fit(self, feedback: pd.DataFrame, learning: Learning = Learning()) -> _Linear:
        d = len(FEATURES)
        theta0 = np.zeros(d)
        theta0[POSTERIOR_MEAN_FEATURE] = 1.0
        A = self.l2 * np.eye(d)
        b = self.l2 * theta0
        rows = feedback[feedback[C.ARM_FEATURES].notna()] if C.ARM_FEATURES in feedback else feedback.iloc[:0]
        if len(rows):
            X = np.array([json.loads(s) for s in rows[C.ARM_FEATURES]], dtype=np.float64)
            if X.shape[1] == d:
                e = examination_weights(feedback)
                w = e[np.clip(rows[C.POSITION].to_numpy(np.int64), 1, len(e)) - 1]
                Xw = X * w[:, None]
                A = A + Xw.T @ Xw
                b = b + Xw.T @ learning.apply(rows)[C.REWARD].to_numpy(np.float64)
        self.A_inv_ = np.linalg.inv(A)
        self.theta_ = self.A_inv_ @ b
        self.n_feedback_ = len(rows)
        return self

    def _ensure_fit(self) -> None:
        if not hasattr(self, "theta_"):
            self.fit(pd.DataFrame())

    def exploit_values(self, ctx: SlateContext) -> np.ndarray:
        self._ensure_fit()
        return np.maximum(ctx.features @ self.theta_, 1e-9)

    def exploit_columns(self, cols: ContextColumns) -> np.ndarray:
        self._ensure_fit()
        return np.maximum(cols.features @ self.theta_, 1e-9)


class LinUCB(_Linear):
    """LinUCB: x.theta + alpha * sqrt(x' A^-1 x) (deterministic)."""

    name: ClassVar[str] = "linucb"
    deterministic: ClassVar[bool] = True

    def __init__(self, alpha: float = 0.1, l2: float = 50.0, diversity: float = 0.8):
        self.alpha = alpha
        self.l2 = l2
        self.diversity = diversity

    def draw_values(self, ctx: SlateContext, rng: np.random.Generator, n_draws: int) -> np.ndarray:
        self._ensure_fit()
        X = ctx.features
        width = np.sqrt(np.einsum("td,de,te->t", X, self.A_inv_, X))
        v = np.maximum(X @ self.theta_ + self.alpha * width, 1e-9)
        return np.broadcast_to(v, (n_draws, ctx.n_tags))


class LinearThompson(_Linear):
    """Linear Thompson sampling: theta ~ N(theta_hat, v^2 A^-1) once per slate."""

    name: ClassVar[str] = "lin_thompson"

    def __init__(self, v: float = 0.1, l2: float = 50.0, diversity: float = 0.8):
        self.v = v
        self.l2 = l2
        self.diversity = diversity

    def draw_values(self, ctx: SlateContext, rng: np.random.Generator, n_draws: int) -> np.ndarray:
        self._ensure_fit()
        L = np.linalg.cholesky(self.A_inv_ + 1e-12 * np.eye(len(self.theta_)))
        theta = self.theta_[None, :] + self.v * rng.standard_normal((n_draws, len(self.theta_))) @ L.T
        return np.maximum(theta @ ctx.features.T, 1e-9)


class SlotAllocator(SlatePolicy):
    """Reserve an exploration budget of slots and spend it on candidate tags.

    ``budget`` maps a user segment to the share of the k slots reserved for exploration
    (``"default"`` for the rest). Users with fewer than ``min_sessions`` sessions get the budget
    scaled by sessions / min_sessions (new users see mostly what they already like). Reserved
    slots sit at fixed, evenly spread positions (never the first) and go to the candidate tag
    with the largest Thompson draw from its Beta posterior, so tags with a high expected upside
    *or* a wide posterior get tried. All other slots are greedy over known tags.
    """

    name: ClassVar[str] = "slot_allocator"

    def __init__(
        self,
        budget: dict[str, float] | None = None,
        min_sessions: int = DEFAULT_MIN_SESSIONS,
        diversity: float = 0.8,
    ):
        self.budget = budget
        self.min_sessions = min_sessions
        self.diversity = diversity

    def n_explore(self, ctx: SlateContext, k: int) -> int:
        budget = dict(DEFAULT_EXPLORATION_BUDGET if self.budget is None else self.budget)
        share = float(budget.get(ctx.segment, budget.get("default", 0.0)))
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"exploration budget for segment {ctx.segment!r} must be in [0, 1], got {share}")
        cap = min(1.0, ctx.n_sessions / self.min_sessions) if self.min_sessions > 0 else 1.0
        return int(np.floor(share * k * cap + 1e-9))

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def explore_slots(k: int, n: int) -> frozenset[int]:
        """0-based slots of n reserved explorations in a slate of k (evenly spread, never slot 0)."""
        if n <= 0 or k <= 1:
            return frozenset()
        n = min(n, k - 1)
        return frozenset({int(x) for x in np.rint(np.linspace(k / (n + 1), k * n / (n + 1), n))} - {0})

    def draw_values(self, ctx: SlateContext, rng: np.random.Generator, n_draws: int) -> np.ndarray:
        a, b = ctx.posterior()
        return rng.beta(a, b, size=(n_draws, ctx.n_tags))

    def choose(self, ctx, slot, k, values, exploit, avail, decay, rng):  # type: ignore[no-untyped-def]
        known = np.asarray(ctx.known, dtype=bool)[None, :]
        greedy_all = _argmax(exploit[None, :] * decay, avail)
        exploit_mask = avail & known
        exploit_pick = np.where(exploit_mask.any(axis=1), _argmax(exploit[None, :] * decay, exploit_mask), greedy_all)
        if slot not in self.explore_slots(k, self.n_explore(ctx, k)):
            return exploit_pick, np.zeros(len(avail), dtype=bool)
        cand = avail & ~known
        has = cand.any(axis=1)
        pick = np.where(has, _argmax(values, cand), exploit_pick)
        return pick, has


POLICIES: dict[str, type[SlatePolicy]] = {
    cls.name: cls for cls in (Greedy, EpsilonGreedy, UCB1, ThompsonSampling, LinUCB, LinearThompson, SlotAllocator)
}


def make_policy(name: str, **params: Any) -> SlatePolicy:
    """A policy by registry name with hyper-parameters (unknown names/params raise clearly)."""
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; choose one of {sorted(POLICIES)}")
    try:
        return POLICIES[name](**params)
    except TypeError as exc:
        raise ValueError(f"bad parameters for policy {name!r}: {exc}") from exc


def examination_weights(feedback: pd.DataFrame, smoothing: float = 200.0, max_position: int = 100) -> np.ndarray:
    """Relative examination probability per slot, e_1 = 1, from click-through rate by position.

    Shape (P,) for positions 1..P; CTR per slot is shrunk towards the overall CTR by
    ``smoothing`` impressions, then divided by slot 1's and clipped to [0.05, 1]."""
    if feedback.empty or C.POSITION not in feedback:
        return np.ones(max_position)
    pos = feedback[C.POSITION].to_numpy(np.int64)
    clicks = feedback[C.CLICKED].to_numpy(np.float64)
    P = int(min(max(pos.max(), 1), max_position))
    pos = np.clip(pos, 1, P)
    n = np.bincount(pos - 1, minlength=P).astype(np.float64)
    c = np.bincount(pos - 1, weights=clicks, minlength=P)
    overall = (c.sum() + 1.0) / (n.sum() + 2.0)
    ctr = (c + smoothing * overall) / (n + smoothing)
    e = np.clip(ctr / ctr[0], 0.05, 1.0)
    return np.r_[e, np.full(max_position - P, e[-1])]
