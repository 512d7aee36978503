"""Reference oracles of the publish path: the rules written one user at a time, plainly.

``ml.explore`` computes them for all users at once on the contexts' columns; the tests in
``test_columnar_contract.py`` and ``test_candidates.py`` check that the whole-array code gives the
same rows as these.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml.explore import columns as C
from ml.explore.candidates import CandidateInputs, CandidateSettings
from ml.explore.context import ArmTable, ContextList, SlateContext, arm_features_json
from ml.explore.feedback import FeedbackStats, shrunk_rate
from ml.explore.policies import SlatePolicy
from ml.explore.slate import recommendation_id, sample_slates, tag_label, user_seed
from ml.frames import isin

SLATE_COLUMNS = [
    "user_id",
    "rank",
    "item_id",
    "score",
    "reason",
    "reason_tag",
    C.POLICY,
    C.PROPENSITY,
    C.PROPENSITY_SE,
    C.IS_EXPLORATION,
    C.RECOMMENDATION_ID,
    C.ARM_FEATURES,
]


def flat_items(ctx: SlateContext) -> list[object]:
    """The context's item ids in code order: tag by tag, each tag's items best first."""
    return [x for its in ctx.items for x in its]


def per_context_slates(
    policy: SlatePolicy,
    contexts: Sequence[SlateContext],
    k: int,
    day: str,
    run_id: str,
    n_draws: int = 256,
    labels: dict[str, str] | None = None,
) -> pd.DataFrame:
    """``build_slates``, one context at a time: the user's slates sampled with the (user, day)
    seed, row 0 shown; the reason is the exploration wording, else the champion's reason for the
    item, else the liked tag."""
    out = []
    for ctx in contexts:
        draws = sample_slates(policy, ctx, k, np.random.default_rng(user_seed(ctx.user_id, day)), n_draws)
        flat = flat_items(ctx)
        prop, se = draws.propensity()
        for j in range(k):
            code = int(draws.items[0, j])
            if code < 0:
                continue
            t = int(draws.tags[0, j])
            tag, item, explore = ctx.tags[t], str(flat[code]), bool(draws.explore[0, j])
            if explore:
                reason = f"something new for you: {tag_label(tag, labels)}"
            else:
                reason = ctx.reasons.get(item) or f"because you like {tag_label(tag, labels)}"
            out.append(
                (
                    ctx.user_id,
                    j + 1,
                    item,
                    float(draws.scores[0, j]),
                    reason,
                    tag,
                    policy.name,
                    float(prop[j]),
                    float(se[j]),
                    explore,
                    recommendation_id(run_id, ctx.user_id),
                    arm_features_json(ctx.features[t]),
                )
            )
    return pd.DataFrame(out, columns=SLATE_COLUMNS)


# --- contexts: the candidate rules one user at a time (``ml.explore.candidates`` builds them
# for all users at once; ``test_candidates.py`` checks that both give the same contexts)


def per_user_contexts(
    inp: CandidateInputs, users: Sequence[str], settings: CandidateSettings | None = None
) -> ContextList:
    """``build_contexts``, one user at a time (the rules of ``ml.explore.candidates``' module
    docstring). Plain rules for unusual input: an item listed twice counts once (its first row),
    champion rows with a non-finite score are left out, a profile row without a weight weighs 0,
    and a tag repeated in a user's profile counts once (its strongest row)."""
    s = settings or CandidateSettings()
    users = [str(u) for u in users]
    items = inp.items.drop_duplicates("item_id")
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
    profiles = inp.profiles if inp.profiles is not None and len(inp.profiles) else None
    if profiles is not None:
        profiles = profiles.assign(weight=profiles["weight"].astype(np.float64).fillna(0.0))
    champ = inp.champion if "reason" in inp.champion else inp.champion.assign(reason="")
    champ_tags = np.array([item_tag.get(x) for x in champ["item_id"].tolist()], dtype=object)
    usable = np.array([t is not None for t in champ_tags], dtype=bool) & np.isfinite(
        champ["score"].to_numpy(np.float64)
    )
    arms = _per_user_arms(
        inp,
        users,
        s,
        champ[usable],
        champ_tags[usable],
        profiles,
        tag_items,
        tag_pops,
        tag_dept,
        dept_tags,
        popular_tags,
        item_tag,
    )
    table = arms.table()
    rate_known = shrunk_rate(*table.known_feedback, s.default_known_rate)
    rate_cand = shrunk_rate(*table.cand_feedback, s.default_candidate_rate)
    return table.contexts(inp.as_of, inp.sessions, inp.segments, s.min_sessions_new, rate_known, rate_cand)


def _known_from_interactions(inp: CandidateInputs, users: set[str]) -> pd.DataFrame:
    """The known tags of ``users`` from their interactions: per (user_id, tag) the share of the
    user's weight, the events (evidence_count), the newest (last_seen) and uncertainty; an item
    listed twice has its first row's tag."""
    inter = inp.interactions[isin(inp.interactions["user_id"].astype(str), users)]
    it = inter.merge(inp.items.drop_duplicates("item_id")[["item_id", "tag"]], on="item_id")
    g = it.groupby(["user_id", "tag"], as_index=False).agg(
        weight=("weight", "sum"), evidence_count=("n_events", "sum"), last_seen=("last_at", "max")
    )
    g["weight"] = g["weight"] / g.groupby("user_id")["weight"].transform("sum").replace(0, 1.0)
    g["uncertainty"] = 1.0 / np.sqrt(1.0 + g["evidence_count"].astype(float))
    return g


def _per_user_arms(
    inp: CandidateInputs,
    users: list[str],
    s: CandidateSettings,
    champ: pd.DataFrame,
    champ_tags: np.ndarray,
    profiles: pd.DataFrame | None,
    tag_items: dict[str, list[str]],
    tag_pops: dict[str, list[tuple[str, float]]],
    tag_dept: dict[str, str],
    dept_tags: dict[str, list[str]],
    popular_tags: list[str],
    item_tag: dict[str, str],
) -> _ArmColumns:
    """The arms of ``users`` one user at a time (see the module docstring for the rules)."""
    arms = _ArmColumns()
    if not users:
        return arms
    # a tag's items for a user with no champion item, purchase or feedback in it: the same for all
    # (arrays shared by those users' contexts; contexts are never modified in place)
    popular_only = {
        t: (
            np.asarray([i for i, _ in pops[: s.items_per_tag]], dtype=object),
            np.asarray([0.5 + 0.5 * rel for _, rel in pops[: s.items_per_tag]], dtype=np.float64),
        )
        for t, pops in tag_pops.items()
    }
    wanted = set(users)
    # these users' feedback: per user {item: (impressions, clicks)}, and (user, tag) -> (examined, clicks)
    fb_items: dict[str, dict[str, tuple[float, float]]] = {}
    fu, fi, fv = _pairs_of(inp.feedback, "user_item", wanted)
    for u, i, (n, c) in zip(fu, fi, fv, strict=True):
        fb_items.setdefault(u, {})[i] = (n, c)
    tu, tt, tv = _pairs_of(inp.feedback, "user_tag", wanted)
    user_tag = {(u, t): (e, c) for u, t, (e, c) in zip(tu, tt, tv, strict=True)}
    mine = profiles[isin(profiles["user_id"].astype(str), wanted)] if profiles is not None else None
    prof_users: set[str] = set(mine["user_id"].astype(str)) if mine is not None else set()
    # derived known tags only for the users without a profile (none once tagging has run)
    derived = _known_from_interactions(inp, wanted - prof_users)
    cols = ["tag", "weight", "evidence_count", "last_seen", "uncertainty"]
    known_rows = _RecordsByUser(derived, cols)
    prof_known = _RecordsByUser(mine[mine["status"] == "known"] if mine is not None else None, cols)
    prof_cand = _RecordsByUser(mine[mine["status"] == "candidate"] if mine is not None else None, cols)
    trans: dict[str, list[tuple[str, float]]] = {}
    if inp.transitions is not None and len(inp.transitions):
        for f, t, p in zip(
            inp.transitions["from_tag"], inp.transitions["to_tag"], inp.transitions["probability"], strict=True
        ):
            trans.setdefault(str(f), []).append((str(t), float(p)))
    in_wanted = isin(champ["user_id"].astype(str), wanted)
    champ_by_user = _ChampionRows(champ[in_wanted], champ_tags[in_wanted])
    excl_by_user: dict[str, set[str]] = {}
    ex = inp.excluded[isin(inp.excluded["user_id"].astype(str), wanted)]
    ex_users = ex["user_id"].astype(str).to_numpy(dtype=object).tolist()
    ex_items = ex["item_id"].astype(str).to_numpy(dtype=object).tolist()
    for u, i in zip(ex_users, ex_items, strict=True):
        excl_by_user.setdefault(u, set()).add(i)

    for u in users:
        rows = prof_known.get(u, []) if u in prof_users else known_rows.get(u, [])
        known: dict[str, dict[str, Any]] = {}
        for tag, weight, evidence, last_seen, unc in rows:
            if len(known) >= s.max_known:
                break
            if tag in tag_items and tag not in known:
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
                if tag in tag_items and tag not in known and tag not in cand:
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
            user_tag,
        )
    return arms


def _pairs_of(fb: FeedbackStats, name: str, users: set[str]) -> tuple[list[Any], list[Any], list[list[float]]]:
    """The ``name`` pairs (``user_tag`` / ``user_item``) of ``users`` as lists: first keys,
    second keys, [a, b] values."""
    a, b, v = fb.columns(name)
    rows = np.flatnonzero(isin(a, users)) if len(a) else np.zeros(0, dtype=np.int64)
    return a[rows].tolist(), b[rows].tolist(), v[rows].tolist()


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


def _stats(pairs: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    v = np.array(pairs, dtype=np.float64).reshape(-1, 2)
    return v[:, 0], v[:, 1]


class _ArmColumns:
    """Arms of users added one at a time (the per-user path); :meth:`table` turns them into an
    :class:`ArmTable`."""

    def __init__(self) -> None:
        self.users: list[str] = []
        self.bounds: list[int] = [0]
        self.tags: list[str] = []
        self.items: list[np.ndarray] = []
        self.scores: list[np.ndarray] = []
        self.reasons: list[dict[str, str]] = []
        self.known: list[bool] = []
        self.weight: list[float] = []
        self.unc: list[float] = []
        self.evidence: list[float] = []
        self.last_seen: list[Any] = []  # per row: the known tag's last_seen, else None
        self.exam: list[float] = []
        self.clicks: list[float] = []
        self.known_fb: list[tuple[float, float]] = []  # per known tag: (examined, clicks)
        self.cand_fb: list[tuple[float, float]] = []

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
        user_tag: dict[tuple[str, str], tuple[float, float]],
    ) -> None:
        self.users.append(u)
        self.bounds.append(self.bounds[-1] + len(tags))
        self.tags.extend(tags)
        self.items.extend(items)
        self.scores.extend(scores)
        self.reasons.append(reasons)
        self.known.extend(is_known)
        self.weight.extend(weights)
        self.known_fb.extend(user_tag.get((u, t), (0.0, 0.0)) for t in known)
        self.cand_fb.extend(user_tag.get((u, t), (0.0, 0.0)) for t in cand)
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
            e, c = user_tag.get((u, t), (0.0, 0.0))
            self.exam.append(e)
            self.clicks.append(c)

    def table(self) -> ArmTable:
        rows = [j for j, ls in enumerate(self.last_seen) if ls is not None and pd.notna(ls)]
        seen = pd.to_datetime(pd.Index([self.last_seen[j] for j in rows], dtype=object)).to_numpy()
        last_seen = np.full(len(self.last_seen), np.datetime64("NaT"), dtype=seen.dtype if rows else "M8[us]")
        last_seen[rows] = seen
        return ArmTable(
            users=self.users,
            bounds=np.asarray(self.bounds, dtype=np.int64),
            tags=np.asarray(self.tags, dtype=object),
            item_bounds=np.r_[0, np.cumsum([len(x) for x in self.items])].astype(np.int64),
            item_ids=np.concatenate(self.items) if self.items else np.zeros(0, dtype=object),
            item_scores=np.concatenate(self.scores) if self.scores else np.zeros(0),
            reasons=self.reasons,
            known=np.asarray(self.known, dtype=bool),
            weight=np.asarray(self.weight, dtype=np.float64),
            unc=np.asarray(self.unc, dtype=np.float64),
            evidence=np.asarray(self.evidence, dtype=np.float64),
            last_seen=last_seen,
            exam=np.asarray(self.exam, dtype=np.float64),
            clicks=np.asarray(self.clicks, dtype=np.float64),
            known_feedback=_stats(self.known_fb),
            cand_feedback=_stats(self.cand_fb),
        )
