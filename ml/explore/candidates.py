"""Building each user's :class:`~ml.explore.context.SlateContext` from plain frames.

The same function serves the publish task (frames read from the warehouse by
``ml.explore.store``) and the simulator (frames kept in memory).

* **Known tags**: ``status = 'known'`` rows of ``ml.user_interest_profiles`` when the user has a
  profile; otherwise derived from the user's interactions (the category tag of every item, weight =
  share of the user's time-decayed feedback).
* **Candidate tags**: ``status = 'candidate'`` profile rows; otherwise the strongest transitions
  from the user's known tags (``ml.category_transitions``, when present), sibling leaves in the
  departments the user shops in, and the shop's most popular tags, in that order of weight.
  Tags the champion recommends beyond the known ones rank first among derived candidates.
* **Items per tag** (level-2 arms): the champion's candidates of that tag first (score 0.5-1 by
  the champion's score), then the tag's popular items (0.1-0.5; 0.5-1 in a tag the champion does
  not reach), never an excluded (bought) item, each score discounted by the user's earlier
  impressions of it without a click: score * min(1, (2 + clicks) / (2 + impressions)). The
  sampler multiplies a tag's value by its next item's score, so stale items lower their tag. Only category tags are arms: every item has exactly
  one, so a slate never repeats an item.
* **Priors**: Beta with mean = base rate x (0.5 + relative weight); the base rates (clicks per
  examined impression of known and of candidate tags) are learned from feedback and shrunk to
  defaults. Strengths (15 known, 5 candidate) match the spread of a mixture prior: a candidate tag
  is a true interest (CTR ~0.3) for roughly one user in eight, else it is noise (CTR ~0.02), so its
  prior is wide and it gets tried; a known tag is usually a real interest, so its prior is tight.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml.explore.context import FEATURES, SlateContext
from ml.explore.feedback import FeedbackStats
from ml.shop.taxonomy import slug

DEFAULT_KNOWN_RATE = 0.15
DEFAULT_CANDIDATE_RATE = 0.05
KNOWN_STRENGTH = 15.0
CANDIDATE_STRENGTH = 5.0


def category_tag(department: str | None, leaf: str | None) -> str | None:
    """``cat:<department>_<leaf>`` as in ``ml.shop.taxonomy.Leaf.tag``."""
    if not department or not leaf or pd.isna(department) or pd.isna(leaf):
        return None
    return f"cat:{slug(str(department))}_{slug(str(leaf))}"


def item_arm_tags(item_features: pd.DataFrame) -> pd.DataFrame:
    """item_id, tag, department, popularity from ``marts.item_features`` columns
    (category_path, category_l1, category_l3, n_users). The leaf is the last path level."""
    leaf = item_features["category_path"].astype(str).str.split(" > ").str[-1]
    leaf = item_features.get("category_l3", leaf).fillna(leaf)
    dept = item_features["category_l1"].fillna(item_features["category_path"].astype(str).str.split(" > ").str[0])
    tags = [category_tag(d, lf) for d, lf in zip(dept, leaf, strict=True)]
    pop = item_features["n_users"] if "n_users" in item_features else pd.Series(0, index=item_features.index)
    out = pd.DataFrame(
        {
            "item_id": item_features["item_id"].astype(str),
            "tag": tags,
            "department": [slug(str(d)) for d in dept],
            "popularity": pop.fillna(0).astype(float).to_numpy(),
        }
    )
    return out[out["tag"].notna()].reset_index(drop=True)


@dataclass
class CandidateSettings:
    max_known: int = 8
    max_candidates: int = 8
    items_per_tag: int = 10
    slate_size: int = 10
    default_known_rate: float = DEFAULT_KNOWN_RATE
    default_candidate_rate: float = DEFAULT_CANDIDATE_RATE
    min_sessions_new: int = 3


@dataclass
class CandidateInputs:
    """Frames the contexts are built from (see the module docstring for their roles).

    ``items``: item_id, tag, department, popularity; ``interactions``: user_id, item_id, weight,
    n_events, last_at; ``champion``: user_id, item_id, score, reason; ``excluded``: user_id,
    item_id; ``profiles``: user_id, tag, weight, evidence_count, last_seen, uncertainty, status;
    ``transitions``: from_tag, to_tag, probability; ``sessions``/``segments``: per user_id."""

    items: pd.DataFrame
    interactions: pd.DataFrame
    champion: pd.DataFrame
    excluded: pd.DataFrame
    as_of: pd.Timestamp
    profiles: pd.DataFrame | None = None
    transitions: pd.DataFrame | None = None
    sessions: dict[str, int] = field(default_factory=dict)
    segments: dict[str, str] = field(default_factory=dict)
    feedback: FeedbackStats = field(default_factory=FeedbackStats)


def _known_from_interactions(inp: CandidateInputs, users: set[str] | None = None) -> pd.DataFrame:
    """Known tags derived from interactions, for ``users`` only when given (each user's rows
    depend on that user's interactions alone)."""
    inter = inp.interactions
    if users is not None:
        inter = inter[inter["user_id"].astype(str).isin(users)]
    it = inter.merge(inp.items[["item_id", "tag"]], on="item_id")
    g = it.groupby(["user_id", "tag"], as_index=False).agg(
        weight=("weight", "sum"), evidence_count=("n_events", "sum"), last_seen=("last_at", "max")
    )
    g["weight"] = g["weight"] / g.groupby("user_id")["weight"].transform("sum").replace(0, 1.0)
    g["uncertainty"] = 1.0 / np.sqrt(1.0 + g["evidence_count"].astype(float))
    return g


def build_contexts(
    inp: CandidateInputs, users: list[str] | np.ndarray, settings: CandidateSettings | None = None
) -> list[SlateContext]:
    """One context per user in ``users`` (order kept)."""
    s = settings or CandidateSettings()
    items = inp.items
    tag_dept = dict(zip(items["tag"], items["department"], strict=False))
    tag_pop = items.groupby("tag")["popularity"].sum().sort_values(ascending=False, kind="stable")
    popular_tags = list(tag_pop.index)
    dept_tags: dict[str, list[str]] = {}
    for t in popular_tags:
        dept_tags.setdefault(tag_dept[t], []).append(t)
    by_tag = items.sort_values(["tag", "popularity", "item_id"], ascending=[True, False, True], kind="stable")
    tag_items = {t: g["item_id"].tolist() for t, g in by_tag.groupby("tag", sort=False)}
    # per tag: (item, popularity relative to the tag's most popular item), most popular first
    tag_pops: dict[str, list[tuple[str, float]]] = {}
    for t, g in by_tag.groupby("tag", sort=False):
        pops = g["popularity"].to_numpy(np.float64)
        top = float(pops.max()) if len(pops) and pops.max() > 0 else 1.0
        tag_pops[t] = list(zip(g["item_id"].tolist(), (pops / top).tolist(), strict=True))
    item_tag = dict(zip(items["item_id"], items["tag"], strict=False))
    # a tag's items for a user with no champion item, purchase or feedback in it: the same for all
    # (arrays shared by those users' contexts; contexts are never modified in place)
    popular_only = {
        t: (
            np.asarray([i for i, _ in pops[: s.items_per_tag]], dtype=object),
            np.asarray([0.5 + 0.5 * rel for _, rel in pops[: s.items_per_tag]], dtype=np.float64),
        )
        for t, pops in tag_pops.items()
    }
    fb_items = inp.feedback.items_by_user()

    profiles = inp.profiles if inp.profiles is not None and len(inp.profiles) else None
    prof_users: set[str] = set(profiles["user_id"].astype(str)) if profiles is not None else set()
    # derived known tags only for the users without a profile (none once tagging has run)
    derived = _known_from_interactions(inp, {str(u) for u in users} - prof_users)
    cols = ["tag", "weight", "evidence_count", "last_seen", "uncertainty"]
    known_rows = _RecordsByUser(derived, cols)
    prof_known = _RecordsByUser(profiles[profiles["status"] == "known"] if profiles is not None else None, cols)
    prof_cand = _RecordsByUser(profiles[profiles["status"] == "candidate"] if profiles is not None else None, cols)
    trans: dict[str, list[tuple[str, float]]] = {}
    if inp.transitions is not None and len(inp.transitions):
        for f, t, p in zip(
            inp.transitions["from_tag"], inp.transitions["to_tag"], inp.transitions["probability"], strict=True
        ):
            trans.setdefault(str(f), []).append((str(t), float(p)))
    # each distinct champion item's tag looked up once (6M rows hold 24k items on the large shop);
    # rows whose item has no arm tag are left out
    codes, uniques = pd.factorize(inp.champion["item_id"])
    found = [item_tag.get(x) for x in np.asarray(uniques, dtype=object).tolist()]
    has_tag = np.array([t is not None for t in found] + [False], dtype=bool)[codes]  # code -1: no id
    champ = inp.champion[has_tag]
    if "reason" not in champ:
        champ = champ.assign(reason="")
    champ_by_user = _ChampionRows(champ, np.array([*found, None], dtype=object)[codes[has_tag]])
    excl_by_user: dict[str, set[str]] = {}
    ex_users = inp.excluded["user_id"].astype(str).to_numpy(dtype=object).tolist()
    ex_items = inp.excluded["item_id"].astype(str).to_numpy(dtype=object).tolist()
    for u, i in zip(ex_users, ex_items, strict=True):
        excl_by_user.setdefault(u, set()).add(i)
    fb = inp.feedback
    known_pairs: set[tuple[str, str]] = set()
    cand_pairs: set[tuple[str, str]] = set()

    plans = []
    for u in users:
        u = str(u)
        rows = prof_known.get(u, []) if u in prof_users else known_rows.get(u, [])
        known: dict[str, dict[str, Any]] = {}
        for tag, weight, evidence, last_seen, unc in rows:
            if len(known) >= s.max_known:
                break
            if tag in tag_items:
                known[tag] = {
                    "weight": float(weight),
                    "evidence": float(evidence) if pd.notna(evidence) else 0.0,
                    "last_seen": last_seen,
                    "uncertainty": float(unc) if pd.notna(unc) else 0.5,
                }
        cg = champ_by_user.get(u)
        cand: dict[str, float] = {}
        if u in prof_users:
            for tag, weight, *_ in prof_cand.get(u, []):
                if tag in tag_items and tag not in known:
                    cand[tag] = float(weight)
        if not cand:
            # tags the champion reaches beyond the user's known ones come first
            if cg is not None:
                lo, hi = cg.lo, cg.hi
                for t, v in zip(cg.tags, cg.scores, strict=True):
                    if t not in known:
                        rel = (v - lo) / (hi - lo) if hi > lo else 1.0
                        cand[str(t)] = max(cand.get(str(t), 0.0), 1.0 + rel)
            for t, info in known.items():
                for t2, p in trans.get(t, []):
                    if t2 in tag_items and t2 not in known:
                        cand[t2] = cand.get(t2, 0.0) + 1.0 + info["weight"] * p
            depts: dict[str, float] = {}
            for t, info in known.items():
                depts[tag_dept.get(t, "")] = depts.get(tag_dept.get(t, ""), 0.0) + info["weight"] + 0.01
            for d, w in sorted(depts.items(), key=lambda x: -x[1]):
                for rank, t in enumerate(dept_tags.get(d, [])):
                    if t not in known:
                        cand[t] = max(cand.get(t, 0.0), 0.5 * w / (1.0 + rank))
            for rank, t in enumerate(popular_tags[: s.max_candidates]):
                if t not in known:
                    cand[t] = max(cand.get(t, 0.0), 0.01 / (1.0 + rank))
        cand = dict(sorted(cand.items(), key=lambda x: -x[1])[: s.max_candidates])
        known_pairs.update((u, t) for t in known)
        cand_pairs.update((u, t) for t in cand)
        plans.append((u, known, cand, cg))

    rate_known = fb.rate(known_pairs, s.default_known_rate)
    rate_cand = fb.rate(cand_pairs, s.default_candidate_rate)
    arms = _ArmColumns()
    for u, known, cand, cg in plans:
        arms.add(
            u,
            known,
            cand,
            *_arm_items(
                known,
                cand,
                cg,
                excl_by_user.get(u, set()),
                tag_pops,
                popular_tags,
                s,
                popular_only,
                fb_items.get(u, {}),
                item_tag,
            ),
            fb,
        )
    return arms.contexts(inp, s, rate_known, rate_cand)


def _user_slices(users: pd.Series) -> tuple[dict[str, tuple[int, int]], np.ndarray | slice]:
    """(user id -> (start, end), row order): taking rows in that order puts each user's rows
    together, in their original order, at [start, end). When the rows already come grouped by
    user (scoring writes them so), the order is ``slice(None)``: no copy is taken."""
    codes, uniques = pd.factorize(users.astype(str))
    grouped = bool(np.all(codes[1:] >= codes[:-1]))  # codes number users by first appearance
    order: np.ndarray | slice = slice(None) if grouped else np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=len(uniques))
    ends = np.cumsum(counts)
    return dict(zip(list(uniques), zip((ends - counts).tolist(), ends.tolist(), strict=True), strict=True)), order


@dataclass
class _UserChampion:
    """One user's champion candidates, in the champion's order: item ids, tags, scores, reasons,
    the scores rescaled to 0.5-1 (``norm``) and the lowest / highest score (NaN ignored)."""

    items: list[str]
    tags: list[str]
    scores: list[float]
    reasons: list[Any]
    norm: list[float]
    lo: float
    hi: float


class _ChampionRows:
    """The champion's candidates grouped by user without one Python tuple per row: per user a
    slice of whole-column arrays (item ids, tags, scores, reasons), in the frame's row order.
    Each user's score range and rescaled scores are computed for all users at once."""

    def __init__(self, champ: pd.DataFrame, tags: np.ndarray):
        """``champ``: user_id, item_id, score, reason; ``tags``: each row's tag (str)."""
        self._bounds, order = _user_slices(champ["user_id"])
        self._items = champ["item_id"].astype(str).to_numpy(dtype=object)[order]
        self._tags = np.asarray(tags, dtype=object)[order]
        scores = champ["score"].to_numpy(np.float64)[order]
        self._scores = scores
        self._reasons = champ["reason"].to_numpy(dtype=object)[order]
        starts = np.array(sorted(lo for lo, _ in self._bounds.values()), dtype=np.int64)
        if len(scores):
            with np.errstate(invalid="ignore"):
                hi = np.fmax.reduceat(scores, starts)  # per user, NaN ignored as by np.nanmax
                lo = np.fmin.reduceat(scores, starts)
            sizes = np.diff(np.r_[starts, len(scores)])
            lo_row, hi_row = np.repeat(lo, sizes), np.repeat(hi, sizes)
            span = np.where(hi_row > lo_row, hi_row - lo_row, 1.0)
            self._norm = 0.5 + 0.5 * (scores - lo_row) / span
            self._lo = dict(zip(starts.tolist(), lo.tolist(), strict=True))
            self._hi = dict(zip(starts.tolist(), hi.tolist(), strict=True))
        else:
            self._norm = scores

    def get(self, user: str) -> _UserChampion | None:
        """One user's candidates, or None."""
        b = self._bounds.get(user)
        if b is None:
            return None
        lo, hi = b
        return _UserChampion(
            self._items[lo:hi].tolist(),
            self._tags[lo:hi].tolist(),
            self._scores[lo:hi].tolist(),
            self._reasons[lo:hi].tolist(),
            self._norm[lo:hi].tolist(),
            self._lo[lo],
            self._hi[lo],
        )


class _RecordsByUser:
    """user_id -> list of ``cols`` tuples (by descending weight when ``sort``), as column slices:
    the tuples of one user are made when that user is asked for, not one per row up front."""

    def __init__(self, df: pd.DataFrame | None, cols: list[str], sort: bool = True):
        self._bounds: dict[str, tuple[int, int]] = {}
        self._arrays: list[np.ndarray] = []
        if df is None or df.empty:
            return
        if sort:
            df = df.sort_values(["user_id", "weight"], ascending=[True, False], kind="stable")
        self._bounds, order = _user_slices(df["user_id"])
        self._arrays = [df[c].to_numpy(dtype=object)[order] for c in cols]

    def get(self, user: str, default: list[tuple[Any, ...]] | None = None) -> list[tuple[Any, ...]]:
        b = self._bounds.get(user)
        if b is None:
            return [] if default is None else default
        lo, hi = b
        return list(zip(*(a[lo:hi].tolist() for a in self._arrays), strict=True))


def _arm_items(
    known: dict[str, dict[str, Any]],
    cand: dict[str, float],
    champ: _UserChampion | None,
    excluded: set[str],
    tag_pops: dict[str, list[tuple[str, float]]],
    popular_tags: list[str],
    s: CandidateSettings,
    popular_only: dict[str, tuple[np.ndarray, np.ndarray]],
    user_fb: dict[str, tuple[float, float]],
    item_tag: dict[str, str],
) -> tuple[list[str], list[np.ndarray], list[np.ndarray], list[bool], list[float], dict[str, str]]:
    """One user's arms: (tags, item ids per tag, item scores per tag, known flags, weights,
    champion reasons by item)."""
    champ_items: dict[str, list[tuple[str, float]]] = {}
    reasons: dict[str, str] = {}
    if champ is not None:
        for it, t, v, rs in zip(champ.items, champ.tags, champ.norm, champ.reasons, strict=True):
            if it in excluded:
                continue
            champ_items.setdefault(t, []).append((it, v))
            if isinstance(rs, str) and rs:
                reasons[it] = rs

    # tags whose ranking can differ from the shop-wide one for this user (bought or shown items)
    fb_tags = Counter(map(item_tag.get, user_fb)) if user_fb else Counter()
    own_tags = {item_tag.get(i) for i in excluded} | set(fb_tags)

    def items_for(tag: str) -> tuple[np.ndarray, np.ndarray]:
        if tag not in champ_items and tag not in own_tags:
            return popular_only[tag]  # the tag's most popular items, as for every such user
        chosen = list(champ_items.get(tag, ()))  # (excluded items were left out above)
        have = {i for i, _ in chosen}
        # popular items fill behind the champion's (0.1-0.5) or lead a tag it does not reach (0.5-1)
        lo, span = (0.1, 0.4) if chosen else (0.5, 0.5)
        # only items the user was shown can be discounted, so popular items beyond the first
        # items_per_tag + (shown items of this tag) can never make the cut
        limit = min(3 * s.items_per_tag, len(chosen) + s.items_per_tag + fb_tags.get(tag, 0))
        for i, rel in tag_pops[tag]:
            if len(chosen) >= limit:
                break
            if i not in excluded and i not in have:
                chosen.append((i, lo + span * rel))
                have.add(i)
        if fb_tags.get(tag):
            scored = []
            for i, sc in chosen:
                n, c = user_fb.get(i, (0.0, 0.0))
                scored.append((i, sc * min(1.0, (2.0 + c) / (2.0 + n))))
        else:  # no item of this tag was shown to the user: every discount is 1
            scored = chosen
        scored.sort(key=lambda x: -x[1])
        scored = scored[: s.items_per_tag]
        return np.asarray([i for i, _ in scored], dtype=object), np.asarray([sc for _, sc in scored], dtype=np.float64)

    tags: list[str] = []
    items: list[np.ndarray] = []
    scores_: list[np.ndarray] = []
    is_known: list[bool] = []
    weights: list[float] = []
    n_items = 0
    for t in list(known) + list(cand):
        its, scs = items_for(t)
        if len(its):
            tags.append(t)
            items.append(its)
            scores_.append(scs)
            is_known.append(t in known)
            weights.append(known[t]["weight"] if t in known else cand[t])
            n_items += len(its)
    # enough items for a full slate: add popular tags as candidates
    for t in popular_tags:
        if n_items >= s.slate_size:
            break
        if t in tags:
            continue
        its, scs = items_for(t)
        if len(its):
            tags.append(t)
            items.append(its)
            scores_.append(scs)
            is_known.append(False)
            weights.append(0.0)
            n_items += len(its)
    return tags, items, scores_, is_known, weights, reasons


class _ArmColumns:
    """Every user's arms as flat columns (one row per user x tag), so the per-tag statistics
    and features of all contexts are computed in whole-array operations; each context then holds
    its rows' slice."""

    def __init__(self) -> None:
        self.users: list[str] = []
        self.bounds: list[int] = [0]
        self.tags: list[list[str]] = []
        self.items: list[list[np.ndarray]] = []
        self.scores: list[list[np.ndarray]] = []
        self.reasons: list[dict[str, str]] = []
        self.known: list[bool] = []
        self.weight: list[float] = []
        self.unc: list[float] = []
        self.evidence: list[float] = []
        self.last_seen: list[Any] = []  # per row: the known tag's last_seen, else None
        self.exam: list[float] = []
        self.clicks: list[float] = []

    def add(
        self,
        u: str,
        known: dict[str, dict[str, Any]],
        cand: dict[str, float],
        tags: list[str],
        items: list[np.ndarray],
        scores: list[np.ndarray],
        is_known: list[bool],
        weights: list[float],
        reasons: dict[str, str],
        fb: FeedbackStats,
    ) -> None:
        self.users.append(u)
        self.bounds.append(self.bounds[-1] + len(tags))
        self.tags.append(tags)
        self.items.append(items)
        self.scores.append(scores)
        self.reasons.append(reasons)
        self.known.extend(is_known)
        self.weight.extend(weights)
        for t in tags:
            info = known.get(t)
            if info is not None:
                self.unc.append(info["uncertainty"])
                self.evidence.append(info["evidence"])
                self.last_seen.append(info["last_seen"])
            else:
                self.unc.append(1.0)
                self.evidence.append(0.0)
                self.last_seen.append(None)
            e, c = fb.user_tag.get((u, t), (0.0, 0.0))
            self.exam.append(e)
            self.clicks.append(c)

    def _recency(self, as_of: pd.Timestamp) -> np.ndarray:
        """exp(-days since the known tag was last seen / 30), 0 where there is no date."""
        out = np.zeros(len(self.last_seen))
        rows = [j for j, ls in enumerate(self.last_seen) if ls is not None and pd.notna(ls)]
        if rows:
            seen = pd.to_datetime(pd.Index([self.last_seen[j] for j in rows], dtype=object))
            days = np.asarray((as_of - seen).total_seconds(), dtype=np.float64) / 86400.0
            out[rows] = np.exp(-np.maximum(days, 0.0) / 30.0)
        return out

    def contexts(
        self, inp: CandidateInputs, s: CandidateSettings, rate_known: float, rate_cand: float
    ) -> list[SlateContext]:
        known_arr = np.array(self.known, dtype=bool)
        w = np.array(self.weight, dtype=np.float64)
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
        unc = np.array(self.unc, dtype=np.float64)
        strength = np.where(known_arr, KNOWN_STRENGTH, CANDIDATE_STRENGTH) * (1.0 - 0.5 * np.clip(unc, 0, 1))
        exam = np.array(self.exam, dtype=np.float64)
        clicks = np.array(self.clicks, dtype=np.float64)
        evidence = np.array(self.evidence, dtype=np.float64)
        as_of = inp.as_of if isinstance(inp.as_of, pd.Timestamp) else pd.Timestamp(inp.as_of)
        recency = self._recency(as_of)
        alpha = prior_mean * strength + clicks
        beta = (1 - prior_mean) * strength + np.maximum(exam - clicks, 0.0)
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
        out = []
        for n, u in enumerate(self.users):
            lo, hi = self.bounds[n], self.bounds[n + 1]
            n_sess = int(inp.sessions.get(u, 0))
            segment = inp.segments.get(u) or ("new" if n_sess < s.min_sessions_new else "default")
            out.append(
                SlateContext(
                    user_id=u,
                    tags=self.tags[n],
                    known=known_arr[lo:hi],
                    prior_mean=prior_mean[lo:hi],
                    prior_strength=strength[lo:hi],
                    impressions=exam[lo:hi],
                    clicks=clicks[lo:hi],
                    features=feats[lo:hi],
                    items=self.items[n],
                    item_scores=self.scores[n],
                    n_sessions=n_sess,
                    segment=str(segment),
                    reasons=self.reasons[n],
                )
            )
        return out
