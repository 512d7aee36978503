"""What a policy sees for one user at publish time: the arms and their statistics.

Level-1 arms are interest tags (``cat:<department>_<leaf>``); level-2 arms are the items of a tag,
ranked best first. Each item belongs to exactly one tag of the context, so a slate built from
per-tag pointers never repeats an item. Per tag the context carries a Beta prior (mean and
strength), the position-debiased feedback counts seen so far, and user x tag features for the
linear policies. Contexts are logged with every published slate (``ml.slate_contexts``), so OPE
evaluates a candidate policy on exactly what the logging policy saw.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, overload

import numpy as np
import pandas as pd

from ml.frames import sorted_distinct

# user x tag features of the linear policies, in this order (values roughly in [0, 1])
FEATURES: tuple[str, ...] = (
    "bias",
    "known",
    "weight",
    "log_evidence",
    "recency",
    "uncertainty",
    "posterior_mean",
    "log_impressions",
)
POSTERIOR_MEAN_FEATURE = FEATURES.index("posterior_mean")
# prior strengths (pseudo-impressions): a candidate tag is a true interest (CTR ~0.3) for
# roughly one user in eight, else noise (CTR ~0.02), so its prior is wide and it gets tried; a
# known tag is usually a real interest, so its prior is tight
KNOWN_STRENGTH = 15.0
CANDIDATE_STRENGTH = 5.0


def beta_posterior(
    prior_mean: np.ndarray, prior_strength: np.ndarray, impressions: np.ndarray, clicks: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Beta(alpha, beta) per arm: the prior (mean x strength) plus clicks, and examined
    impressions without a click. One function for one context and for many arms at once."""
    alpha = prior_mean * prior_strength + clicks
    beta = (1.0 - prior_mean) * prior_strength + np.maximum(impressions - clicks, 0.0)
    return alpha, beta


@dataclass
class SlateContext:
    """Arms of one user. Shapes: every per-tag array has length T = len(tags); ``features`` is
    (T, len(FEATURES)); ``items[t]`` / ``item_scores[t]`` rank tag t's items (scores in [0, 1])."""

    user_id: str
    tags: list[str]
    known: np.ndarray
    prior_mean: np.ndarray
    prior_strength: np.ndarray
    impressions: np.ndarray
    clicks: np.ndarray
    features: np.ndarray
    items: list[np.ndarray]
    item_scores: list[np.ndarray]
    n_sessions: int = 0
    segment: str = "default"
    reasons: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        T = len(self.tags)
        for name in ("known", "prior_mean", "prior_strength", "impressions", "clicks"):
            arr = np.asarray(getattr(self, name))
            if arr.shape != (T,):
                raise ValueError(f"context {self.user_id}: {name} has shape {arr.shape}, expected ({T},)")
        if np.asarray(self.features).shape != (T, len(FEATURES)):
            raise ValueError(f"context {self.user_id}: features shape {np.asarray(self.features).shape}")
        if len(self.items) != T or len(self.item_scores) != T:
            raise ValueError(f"context {self.user_id}: items/item_scores must have one list per tag")

    @property
    def n_tags(self) -> int:
        return len(self.tags)

    @property
    def n_items(self) -> int:
        return int(sum(len(i) for i in self.items))

    def posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """Beta(alpha, beta) per tag (:func:`beta_posterior`)."""
        return beta_posterior(self.prior_mean, self.prior_strength, self.impressions, self.clicks)

    def posterior_mean(self) -> np.ndarray:
        a, b = self.posterior()
        return a / (a + b)

    def to_json(self) -> str:
        return json.dumps(
            {
                "user_id": self.user_id,
                "segment": self.segment,
                "n_sessions": int(self.n_sessions),
                "tags": list(self.tags),
                "known": [int(k) for k in self.known],
                "prior_mean": _round(self.prior_mean),
                "prior_strength": _round(self.prior_strength),
                "impressions": _round(self.impressions),
                "clicks": _round(self.clicks),
                "features": [_round(f) for f in self.features],
                "items": [[str(i) for i in its] for its in self.items],
                "item_scores": [_round(s) for s in self.item_scores],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | dict[str, Any]) -> SlateContext:
        d = json.loads(text) if isinstance(text, str) else text
        T = len(d["tags"])
        return cls(
            user_id=d["user_id"],
            tags=list(d["tags"]),
            known=np.asarray(d["known"], dtype=bool).reshape(T),
            prior_mean=np.asarray(d["prior_mean"], dtype=np.float64).reshape(T),
            prior_strength=np.asarray(d["prior_strength"], dtype=np.float64).reshape(T),
            impressions=np.asarray(d["impressions"], dtype=np.float64).reshape(T),
            clicks=np.asarray(d["clicks"], dtype=np.float64).reshape(T),
            features=np.asarray(d["features"], dtype=np.float64).reshape(T, len(FEATURES)),
            items=[np.asarray(i, dtype=object) for i in d["items"]],
            item_scores=[np.asarray(s, dtype=np.float64) for s in d["item_scores"]],
            n_sessions=int(d.get("n_sessions", 0)),
            segment=str(d.get("segment", "default")),
        )


def _round(a: np.ndarray) -> list[float]:
    return [round(x, 6) for x in np.asarray(a, dtype=np.float64).ravel().tolist()]


@dataclass
class ContextColumns:
    """The contexts of many users as flat columns (what whole-array code reads instead of one
    :class:`SlateContext` at a time). User ``n`` owns arm rows ``arm_bounds[n]:arm_bounds[n + 1]``
    (in the order of its context's ``tags``); arm row ``r`` owns items
    ``item_bounds[r]:item_bounds[r + 1]`` (best first). Per-arm arrays have one row per arm,
    ``features`` is (arms, len(FEATURES))."""

    users: list[str]
    arm_bounds: np.ndarray
    tags: np.ndarray
    known: np.ndarray
    prior_mean: np.ndarray
    prior_strength: np.ndarray
    impressions: np.ndarray
    clicks: np.ndarray
    features: np.ndarray
    item_bounds: np.ndarray
    item_ids: np.ndarray
    item_scores: np.ndarray
    reasons: list[dict[str, str]]
    # per user: the contexts' ``n_sessions`` and ``segment``
    n_sessions: np.ndarray
    segments: list[str]

    _features_json: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    def context(self, n: int) -> SlateContext:
        """User ``n``'s :class:`SlateContext`, its arrays views of the columns."""
        lo, hi = int(self.arm_bounds[n]), int(self.arm_bounds[n + 1])
        ib = self.item_bounds
        return SlateContext(
            user_id=self.users[n],
            tags=self.tags[lo:hi].tolist(),
            known=self.known[lo:hi],
            prior_mean=self.prior_mean[lo:hi],
            prior_strength=self.prior_strength[lo:hi],
            impressions=self.impressions[lo:hi],
            clicks=self.clicks[lo:hi],
            features=self.features[lo:hi],
            items=[self.item_ids[ib[r] : ib[r + 1]] for r in range(lo, hi)],
            item_scores=[self.item_scores[ib[r] : ib[r + 1]] for r in range(lo, hi)],
            n_sessions=int(self.n_sessions[n]),
            segment=self.segments[n],
            reasons=self.reasons[n],
        )

    def posterior_mean(self) -> np.ndarray:
        """Per arm, :meth:`SlateContext.posterior_mean` (the same function, so equal values)."""
        alpha, beta = beta_posterior(self.prior_mean, self.prior_strength, self.impressions, self.clicks)
        return alpha / (alpha + beta)

    def features_json(self, arms: np.ndarray) -> np.ndarray:
        """The ``arm_features`` text of arm rows ``arms`` (object array, the strings of
        :func:`arm_features_json`), each arm written once however often the slates, campaigns
        and new-item slot ask for it."""
        arms = np.asarray(arms, dtype=np.int64)
        if self._features_json is None:
            self._features_json = np.full(len(self.features), None, dtype=object)
        memo = self._features_json
        todo, _ = sorted_distinct(arms[memo[arms] == None])  # noqa: E711 (element-wise)
        if len(todo):
            memo[todo] = np.asarray(arm_features_json_rows(self.features[todo]), dtype=object)
        return memo[arms]

    def to_json_rows(self) -> list[str]:
        """Every user's :meth:`SlateContext.to_json` text, the same strings, written from the
        columns: each distinct number, tag and item id is formatted once and each arm's lists
        once, instead of 100k+ objects each rounding and encoding their own arrays."""
        n_users = len(self.users)
        arms = len(self.tags)
        ab = np.asarray(self.arm_bounds, dtype=np.int64).tolist()
        ib = np.asarray(self.item_bounds, dtype=np.int64).tolist()
        per_arm = {
            name: _json_numbers(getattr(self, name)).tolist()
            for name in ("prior_mean", "prior_strength", "impressions", "clicks")
        }
        known = np.where(np.asarray(self.known, dtype=bool), "1", "0").tolist()
        tags = _json_texts(self.tags).tolist()
        feats = _json_numbers(self.features).reshape(arms, len(FEATURES)).tolist()
        feature_rows = ["[" + ",".join(f) + "]" for f in feats]
        item_text = _json_texts(self.item_ids).tolist()
        score_text = _json_numbers(self.item_scores).tolist()
        items = ["[" + ",".join(item_text[ib[r] : ib[r + 1]]) + "]" for r in range(arms)]
        scores = ["[" + ",".join(score_text[ib[r] : ib[r + 1]]) + "]" for r in range(arms)]
        sessions = np.asarray(self.n_sessions, dtype=np.int64).tolist()
        segments = _json_texts(self.segments).tolist()
        users = _json_texts(self.users).tolist()
        out = []
        for n in range(n_users):
            lo, hi = ab[n], ab[n + 1]
            out.append(
                f'{{"user_id":{users[n]},"segment":{segments[n]},"n_sessions":{sessions[n]},'
                f'"tags":[{",".join(tags[lo:hi])}],"known":[{",".join(known[lo:hi])}],'
                f'"prior_mean":[{",".join(per_arm["prior_mean"][lo:hi])}],'
                f'"prior_strength":[{",".join(per_arm["prior_strength"][lo:hi])}],'
                f'"impressions":[{",".join(per_arm["impressions"][lo:hi])}],'
                f'"clicks":[{",".join(per_arm["clicks"][lo:hi])}],'
                f'"features":[{",".join(feature_rows[lo:hi])}],"items":[{",".join(items[lo:hi])}],'
                f'"item_scores":[{",".join(scores[lo:hi])}]}}'
            )
        return out


def arm_features_json(row: np.ndarray) -> str:
    """A slate row's ``arm_features``: the arm's context features, rounded, as compact JSON."""
    return arm_features_json_rows([row])[0]


def arm_features_json_rows(rows: list[np.ndarray] | np.ndarray) -> list[str]:
    """:func:`arm_features_json` of many rows, each distinct value written once."""
    if len(rows) == 0:
        return []
    arr = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
    texts = _json_numbers(arr).reshape(arr.shape).tolist()
    return ["[" + ",".join(row) + "]" for row in texts]


def _json_numbers(values: Any) -> np.ndarray:
    """``json.dumps(round(v, 6))`` of every value (flattened; object array), each distinct
    value (by its bits, so -0.0 and NaN payloads stay what they are) formatted once."""
    v = np.ascontiguousarray(np.asarray(values, dtype=np.float64).ravel())
    if len(v) == 0:
        return np.zeros(0, dtype=object)
    # (hashing the bits finds the distinct values several times faster than sorting them)
    code, bits = pd.factorize(v.view(np.int64))
    distinct = np.asarray(bits, dtype=np.int64).view(np.float64)
    # float.__repr__ is what json writes for a finite float; the others are named
    text = np.array(list(map(repr, map(round, distinct.tolist(), repeat(6)))), dtype=object)
    odd = ~np.isfinite(distinct)
    if odd.any():
        text[odd] = np.where(np.isnan(distinct[odd]), "NaN", np.where(distinct[odd] > 0, "Infinity", "-Infinity"))
    return text[code]


def _json_texts(values: Any) -> np.ndarray:
    """``json.dumps(str(v))`` of every value (object array), each distinct value once."""
    arr = np.asarray(values, dtype=object)
    if len(arr) == 0:
        return np.zeros(0, dtype=object)
    codes, uniques = pd.factorize(arr, use_na_sentinel=False)  # (a missing value is written as str() writes it)
    text = np.array([json.dumps(str(u)) for u in np.asarray(uniques, dtype=object).tolist()], dtype=object)
    return text[codes]


class ContextList(Sequence[SlateContext]):
    """The contexts of many users as a read-only sequence of :class:`SlateContext`, and the
    same contexts as :class:`ContextColumns` (``columns``) for whole-array consumers. A context
    object is made (:meth:`ContextColumns.context`) the first time it is read and kept, so code
    that reads only the columns never makes the 100k+ objects; a slice is a plain list.
    ``made``: the context objects when they exist already."""

    def __init__(self, columns: ContextColumns, made: Sequence[SlateContext] | None = None):
        self.columns = columns
        self._made: list[SlateContext | None] = list(made) if made is not None else [None] * len(columns.users)

    @classmethod
    def of(cls, contexts: Sequence[SlateContext]) -> ContextList:
        """Contexts made one by one (tests, hand-built examples) as a :class:`ContextList`."""
        if isinstance(contexts, ContextList):
            return contexts
        ctxs = list(contexts)
        per_arm = [a for c in ctxs for a in c.items]
        scores = [s for c in ctxs for s in c.item_scores]

        def cat(name: str, dtype: Any) -> np.ndarray:
            parts = [np.asarray(getattr(c, name), dtype=dtype) for c in ctxs]
            return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)

        columns = ContextColumns(
            users=[c.user_id for c in ctxs],
            arm_bounds=np.r_[0, np.cumsum([c.n_tags for c in ctxs])].astype(np.int64),
            tags=np.asarray([t for c in ctxs for t in c.tags], dtype=object),
            known=cat("known", bool),
            prior_mean=cat("prior_mean", np.float64),
            prior_strength=cat("prior_strength", np.float64),
            impressions=cat("impressions", np.float64),
            clicks=cat("clicks", np.float64),
            features=np.concatenate([np.asarray(c.features, dtype=np.float64) for c in ctxs]).reshape(-1, len(FEATURES))
            if ctxs
            else np.zeros((0, len(FEATURES))),
            item_bounds=np.r_[0, np.cumsum([len(a) for a in per_arm])].astype(np.int64),
            item_ids=np.concatenate([np.asarray(a, dtype=object) for a in per_arm]) if per_arm else np.zeros(0, object),
            item_scores=np.concatenate([np.asarray(s, dtype=np.float64) for s in scores]) if scores else np.zeros(0),
            reasons=[c.reasons for c in ctxs],
            n_sessions=np.asarray([c.n_sessions for c in ctxs], dtype=np.int64),
            segments=[c.segment for c in ctxs],
        )
        return cls(columns, ctxs)

    def __len__(self) -> int:
        return len(self._made)

    @overload
    def __getitem__(self, i: int) -> SlateContext: ...

    @overload
    def __getitem__(self, i: slice) -> list[SlateContext]: ...

    def __getitem__(self, i: int | slice) -> SlateContext | list[SlateContext]:
        if isinstance(i, slice):
            return [self[n] for n in range(*i.indices(len(self)))]
        n = operator.index(i)
        if n < 0:
            n += len(self)
        if not 0 <= n < len(self):
            raise IndexError(f"context {i} of {len(self)}")
        ctx = self._made[n]
        if ctx is None:
            ctx = self._made[n] = self.columns.context(n)
        return ctx

    def __iter__(self) -> Iterator[SlateContext]:
        for n in range(len(self)):
            yield self[n]


@dataclass
class ArmTable:
    """Every user's arms as flat columns, one row per user x tag, rows grouped by user in the
    order of ``users`` (user ``n`` owns rows ``bounds[n]:bounds[n + 1]``), so the per-tag
    statistics and features of all contexts are computed in whole-array operations; each
    context then holds its rows' slice. ``item_ids``/``item_scores``: every row's ranked items,
    row ``r`` owning ``item_bounds[r]:item_bounds[r + 1]``;
    ``reasons``: per user, the champion's reason by item; ``known_feedback``/``cand_feedback``:
    (examined impressions, clicks) of every (user, tag) pair chosen as a known / candidate tag
    (also those left without items), for the base rates. ``ml.explore.candidates.build_contexts``
    builds it for all users at once; the tests' per-user oracle builds it one user at a time."""

    users: list[str]
    bounds: np.ndarray
    tags: np.ndarray
    item_bounds: np.ndarray
    item_ids: np.ndarray
    item_scores: np.ndarray
    reasons: list[dict[str, str]]
    known: np.ndarray
    weight: np.ndarray
    unc: np.ndarray
    evidence: np.ndarray
    last_seen: np.ndarray  # datetime64, NaT where the row is not a known tag or has no date
    exam: np.ndarray
    clicks: np.ndarray
    known_feedback: tuple[np.ndarray, np.ndarray]
    cand_feedback: tuple[np.ndarray, np.ndarray]

    def _recency(self, as_of: pd.Timestamp) -> np.ndarray:
        """exp(-days since the known tag was last seen / 30), 0 where there is no date."""
        out = np.zeros(len(self.last_seen))
        rows = np.flatnonzero(~np.isnat(self.last_seen))
        if len(rows):
            seen = pd.DatetimeIndex(self.last_seen[rows])
            days = np.asarray((as_of - seen).total_seconds(), dtype=np.float64) / 86400.0
            out[rows] = np.exp(-np.maximum(days, 0.0) / 30.0)
        return out

    def contexts(
        self,
        as_of: pd.Timestamp,
        sessions: dict[str, int],
        segments: dict[str, str],
        min_sessions_new: int,
        rate_known: float,
        rate_cand: float,
    ) -> ContextList:
        """The users' contexts. Each arm's prior is Beta with mean = its kind's base rate
        (``rate_known``/``rate_cand``: clicks per examined impression) x (0.5 + its weight
        relative to the user's strongest arm of the same kind) and strength ``KNOWN_STRENGTH`` or
        ``CANDIDATE_STRENGTH`` x (1 - uncertainty / 2); the features follow :data:`FEATURES`. A
        user's segment is ``segments``' or else "new" below ``min_sessions_new`` sessions."""
        known_arr = self.known
        w = self.weight
        n_users = len(self.users)
        user_of = np.repeat(np.arange(n_users), np.diff(self.bounds))
        # weight relative to the strongest known (resp. other) arm of the same user
        group = 2 * user_of + (~known_arr).astype(np.int64)
        top = np.full(2 * n_users, -np.inf)
        np.maximum.at(top, group, w)
        top_row = top[group]
        rel = np.zeros_like(w)
        has = top_row > 0
        rel[has] = w[has] / top_row[has]
        prior_mean = np.clip(np.where(known_arr, rate_known, rate_cand) * (0.5 + rel), 1e-3, 0.95)
        unc = self.unc
        strength = np.where(known_arr, KNOWN_STRENGTH, CANDIDATE_STRENGTH) * (1.0 - 0.5 * np.clip(unc, 0, 1))
        exam, clicks, evidence = self.exam, self.clicks, self.evidence
        recency = self._recency(pd.Timestamp(as_of))
        alpha, beta = beta_posterior(prior_mean, strength, exam, clicks)
        feats = np.column_stack(
            [
                np.ones(len(w)),
                known_arr.astype(float),
                rel,
                np.clip(np.log1p(evidence) / 5.0, 0, 1),
                recency,
                np.clip(unc, 0, 1),
                alpha / (alpha + beta),
                np.clip(np.log1p(exam) / 3.0, 0, 1),
            ]
        ).reshape(len(w), len(FEATURES))
        n_sessions = np.array([int(sessions.get(u, 0)) for u in self.users], dtype=np.int64)
        user_segments = [
            str(segments.get(u) or ("new" if n < min_sessions_new else "default"))
            for u, n in zip(self.users, n_sessions.tolist(), strict=True)
        ]
        return ContextList(
            ContextColumns(
                users=self.users,
                arm_bounds=self.bounds,
                tags=self.tags,
                known=known_arr,
                prior_mean=prior_mean,
                prior_strength=strength,
                impressions=exam,
                clicks=clicks,
                features=feats,
                item_bounds=self.item_bounds,
                item_ids=self.item_ids,
                item_scores=self.item_scores,
                reasons=self.reasons,
                n_sessions=n_sessions,
                segments=user_segments,
            )
        )
