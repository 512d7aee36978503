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

from ml.explore.context import FEATURES, ContextColumns, ContextList, SlateContext, beta_posterior
from ml.explore.feedback import FeedbackStats, shrunk_rate
from ml.frames import isin, sorted_distinct
from ml.shop.taxonomy import slug
from ml.threads import in_background

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


INTERACTION_COLUMNS = ("user_id", "item_id", "weight", "n_events", "last_at")
CHAMPION_COLUMNS = ("user_id", "item_id", "score", "reason")


def _empty(columns: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


@dataclass(frozen=True)
class ChampionCodes:
    """The champion's candidate rows as positions, as scoring has them: row ``r`` is user
    ``user_ids[row_user[r]]`` and item ``item_ids[row_item[r]]`` (so the rows' ids are not
    hashed again)."""

    row_user: np.ndarray
    row_item: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray

    def __post_init__(self) -> None:
        if len(self.row_user) != len(self.row_item):
            raise ValueError(f"champion codes: {len(self.row_user)} row users, {len(self.row_item)} row items")


@dataclass
class CandidateInputs:
    """Frames the contexts are built from (see the module docstring for their roles).

    ``items``: item_id, tag, department, popularity; ``interactions``: user_id, item_id, weight,
    n_events, last_at; ``champion``: user_id, item_id, score, reason; ``excluded``: user_id,
    item_id; ``profiles``: user_id, tag, weight, evidence_count, last_seen, uncertainty, status;
    ``transitions``: from_tag, to_tag, probability; ``sessions``/``segments``: per user_id."""

    items: pd.DataFrame
    excluded: pd.DataFrame
    as_of: pd.Timestamp
    # (empty until the champion's candidates are added: publishing reads the rest first)
    interactions: pd.DataFrame = field(default_factory=lambda: _empty(INTERACTION_COLUMNS))
    champion: pd.DataFrame = field(default_factory=lambda: _empty(CHAMPION_COLUMNS))
    profiles: pd.DataFrame | None = None
    transitions: pd.DataFrame | None = None
    sessions: dict[str, int] = field(default_factory=dict)
    segments: dict[str, str] = field(default_factory=dict)
    feedback: FeedbackStats = field(default_factory=FeedbackStats)
    # the champion rows as positions into (user ids, item ids), as scoring has them
    champion_codes: ChampionCodes | None = None


def _known_from_interactions(inp: CandidateInputs, users: set[str] | None = None) -> pd.DataFrame:
    """Known tags derived from interactions, for ``users`` only when given (each user's rows
    depend on that user's interactions alone)."""
    inter = inp.interactions
    if users is not None:
        inter = inter[isin(inter["user_id"].astype(str), users)]
    it = inter.merge(inp.items[["item_id", "tag"]], on="item_id")
    g = it.groupby(["user_id", "tag"], as_index=False).agg(
        weight=("weight", "sum"), evidence_count=("n_events", "sum"), last_seen=("last_at", "max")
    )
    g["weight"] = g["weight"] / g.groupby("user_id")["weight"].transform("sum").replace(0, 1.0)
    g["uncertainty"] = 1.0 / np.sqrt(1.0 + g["evidence_count"].astype(float))
    return g


def build_contexts(
    inp: CandidateInputs,
    users: list[str] | np.ndarray,
    settings: CandidateSettings | None = None,
    columnar: bool = True,
) -> ContextList:
    """One context per user in ``users`` (order kept).

    Users with an interest profile whose candidate rows give at least one arm and whose arms
    hold a full slate are built in whole-array operations (:func:`_profiled_arms`); every
    other user (no profile, derived candidates, popular tags needed to fill the slate) goes
    through the per-user path. ``columnar=False`` sends every user through the per-user path
    (the reference the columnar one is tested against)."""
    s = settings or CandidateSettings()
    users = [str(u) for u in users]
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
    profiles = inp.profiles if inp.profiles is not None and len(inp.profiles) else None
    fb = inp.feedback

    # each distinct champion item's tag looked up once (6M rows hold 24k items on the large shop);
    # rows whose item has no arm tag are left out
    cc = inp.champion_codes
    if cc is not None and len(cc.row_user) != len(inp.champion):
        raise ValueError(f"champion codes hold {len(cc.row_user)} rows, the champion frame {len(inp.champion)}")
    if cc is not None:
        codes, uniques = np.asarray(cc.row_item, dtype=np.int64), np.asarray(cc.item_ids, dtype=object)
    else:
        codes, uniques = pd.factorize(inp.champion["item_id"])
    found = [item_tag.get(x) for x in np.asarray(uniques, dtype=object).tolist()]
    has_tag = np.array([t is not None for t in found] + [False], dtype=bool)[codes]  # code -1: no id
    champ = inp.champion[has_tag]
    if "reason" not in champ:
        champ = champ.assign(reason="")
    champ_tags = np.array([*found, None], dtype=object)[codes[has_tag]]

    fast: _ArmTable | None = None
    slow_users = users
    if columnar and profiles is not None and items["item_id"].is_unique:
        row_codes = None
        if cc is not None:  # each row's user in ``users`` and item in ``items``, from the positions
            user_pos = pd.Index(users).get_indexer(np.asarray([str(u) for u in cc.user_ids], dtype=object))
            item_pos = pd.Index(items["item_id"]).get_indexer(np.asarray(cc.item_ids, dtype=object))
            row_codes = (user_pos[np.asarray(cc.row_user)][has_tag], item_pos[codes][has_tag])
        fast, slow_pos = _profiled_arms(inp, users, profiles, champ, champ_tags, tag_pops, fb, s, row_codes)
        slow_users = [users[p] for p in slow_pos.tolist()]
        if row_codes is not None:  # only the slow users' rows go on (found by code, not by id)
            slow_flag = np.zeros(len(users) + 1, dtype=bool)  # the last entry: code -1
            slow_flag[slow_pos] = True
            mine = slow_flag[row_codes[0]]
            champ, champ_tags = champ[mine], champ_tags[mine]
    slow = _per_user_arms(
        inp,
        slow_users,
        s,
        champ,
        champ_tags,
        profiles,
        tag_items,
        tag_pops,
        tag_dept,
        dept_tags,
        popular_tags,
        item_tag,
    )
    table = _ArmTable.merge(users, fast, slow)
    rate_known = shrunk_rate(*table.known_feedback, s.default_known_rate)
    rate_cand = shrunk_rate(*table.cand_feedback, s.default_candidate_rate)
    return table.contexts(inp, s, rate_known, rate_cand)


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
) -> _ArmTable:
    """The arms of ``users`` one user at a time (see the module docstring for the rules)."""
    arms = _ArmColumns()
    if not users:
        return arms.table()
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
    return arms.table()


def _pairs_of(fb: FeedbackStats, name: str, users: set[str]) -> tuple[list[Any], list[Any], list[list[float]]]:
    """The ``name`` pairs (``user_tag`` / ``user_item``) of ``users`` as lists: first keys,
    second keys, [a, b] values."""
    a, b, v = fb.columns(name)
    rows = np.flatnonzero(isin(a, users)) if len(a) else np.zeros(0, dtype=np.int64)
    return a[rows].tolist(), b[rows].tolist(), v[rows].tolist()


def _codes(values: Any, index: pd.Index) -> np.ndarray:
    """Position of each of ``values`` in ``index`` (-1 when absent), each distinct value looked
    up once."""
    codes, uniques = pd.factorize(values if isinstance(values, pd.Series | np.ndarray) else np.asarray(values, object))
    found = np.append(index.get_indexer(uniques), -1) if len(uniques) else np.array([-1])
    return found[codes].astype(np.int64)


def _member(keys: np.ndarray, sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(found, position) of each key in the sorted array ``sorted_keys``."""
    if len(sorted_keys) == 0:
        return np.zeros(len(keys), dtype=bool), np.zeros(len(keys), dtype=np.int64)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[pos] == keys, pos


def _lookup(keys: np.ndarray, sorted_keys: np.ndarray, values: np.ndarray, default: Any = 0) -> np.ndarray:
    """``values`` at each key's place in ``sorted_keys``, ``default`` where a key is absent."""
    found, pos = _member(keys, sorted_keys)
    out = np.full(len(keys), default, dtype=np.result_type(values, np.asarray(default)))
    out[found] = values[pos[found]]
    return out


def _group_rank(groups: np.ndarray) -> np.ndarray:
    """0, 1, 2... within each run of equal values of ``groups`` (rows already grouped)."""
    if len(groups) == 0:
        return np.zeros(0, dtype=np.int64)
    start = np.r_[True, groups[1:] != groups[:-1]]
    first = np.flatnonzero(start)
    return np.arange(len(groups)) - np.repeat(first, np.diff(np.r_[first, len(groups)]))


@dataclass
class _SideKeys:
    """The integer keys :func:`_profiled_arms` looks up, computed apart from the arms:
    ``ex_key`` the excluded (user, item) pairs (user x n_items + item, sorted, once each);
    ``fb_key``/``fb_val`` the shown (user, item) pairs sorted, with (impressions, clicks);
    ``shown_per_tag``/``bought_per_tag`` (sorted user x T + tag keys, counts) of the user's
    shown and bought items per tag; ``tag_key``/``tag_val`` the (user, tag) feedback, sorted,
    with (examined impressions, clicks)."""

    ex_key: np.ndarray
    fb_key: np.ndarray
    fb_val: np.ndarray
    shown_per_tag: tuple[np.ndarray, np.ndarray]
    bought_per_tag: tuple[np.ndarray, np.ndarray]
    tag_key: np.ndarray
    tag_val: np.ndarray


def _side_keys(
    ex: pd.DataFrame,
    fb: FeedbackStats,
    U: pd.Index,
    item_index: pd.Index,
    tag_index: pd.Index,
    item_tag: np.ndarray,
) -> _SideKeys:
    """The :class:`_SideKeys` of the excluded pairs ``ex`` and the feedback ``fb``, for the
    users ``U``, items ``item_index`` and tags ``tag_index`` (``item_tag``: each item's tag
    code, -1 for none, with one extra -1 at the end)."""
    n_items, T = max(len(item_index), 1), max(len(tag_index), 1)
    # excluded (bought) pairs, once each
    eu, ei = _codes(ex["user_id"].astype(str), U), _codes(ex["item_id"].astype(str), item_index)
    ok = (eu >= 0) & (ei >= 0)
    ex_key, _ = sorted_distinct(eu[ok] * n_items + ei[ok])
    ex_u, ex_i = ex_key // n_items, ex_key % n_items
    tagged = item_tag[ex_i] >= 0
    bought_per_tag = sorted_distinct(ex_u[tagged] * T + item_tag[ex_i][tagged])
    # feedback: per (user, item) impressions and clicks, per (user, tag) the user's shown items
    ui_users, ui_items, fv = fb.columns("user_item")
    fu, fi = _codes(ui_users, U), _codes(ui_items, item_index)
    ok = (fu >= 0) & (fi >= 0)
    fb_key = fu[ok] * n_items + fi[ok]
    fb_order = np.argsort(fb_key, kind="stable")
    fb_key, fb_val = fb_key[fb_order], fv[ok][fb_order]
    fb_tag = item_tag[fi[ok]][fb_order]
    shown_per_tag = sorted_distinct((fb_key // n_items * T + fb_tag)[fb_tag >= 0])
    # per (user, tag): examined impressions and clicks
    ut_users, ut_tags, tv = fb.columns("user_tag")
    tu, tt = _codes(ut_users, U), _codes(ut_tags, tag_index)
    ok = (tu >= 0) & (tt >= 0)
    t_key = tu[ok] * T + tt[ok]
    t_order = np.argsort(t_key, kind="stable")
    return _SideKeys(ex_key, fb_key, fb_val, shown_per_tag, bought_per_tag, t_key[t_order], tv[ok][t_order])


@dataclass
class _ProfileArms:
    """The arms of users' interest profiles, one row per arm, grouped by user (known tags in
    profile order, then candidate tags): user and tag codes, known flag, weight, evidence,
    uncertainty, last seen; ``slow``: per user, whether the per-user path must build it (no
    profile, no usable candidate row, a tag twice, a missing candidate weight)."""

    slow: np.ndarray
    user: np.ndarray
    tag: np.ndarray
    known: np.ndarray
    weight: np.ndarray
    evidence: np.ndarray
    uncertainty: np.ndarray
    last_seen: np.ndarray


def _profile_arms(profiles: pd.DataFrame, U: pd.Index, tag_index: pd.Index, s: CandidateSettings) -> _ProfileArms:
    """The :class:`_ProfileArms` of the users ``U`` over the arm tags ``tag_index``."""
    n_users = len(U)
    T = max(len(tag_index), 1)
    slow = np.zeros(n_users, dtype=bool)
    has_profile = np.zeros(n_users, dtype=bool)
    pu = _codes(profiles["user_id"].astype(str), U)
    has_profile[pu[pu >= 0]] = True
    slow |= ~has_profile
    P = profiles.assign(_u=pu, _t=tag_index.get_indexer(profiles["tag"]))
    P = P[(P["_u"] >= 0) & (P["_t"] >= 0)]
    # the per-user path reads a user's rows by descending weight (stable)
    P = P.sort_values(["user_id", "weight"], ascending=[True, False], kind="stable")
    dup = P.duplicated(["_u", "_t", "status"], keep=False).to_numpy()
    slow[P["_u"].to_numpy()[dup]] = True
    kn = P[P["status"] == "known"]
    kn = kn[kn.groupby("_u", sort=False).cumcount().to_numpy() < s.max_known]
    known_key = np.sort(kn["_u"].to_numpy(np.int64) * T + kn["_t"].to_numpy(np.int64))
    cd = P[P["status"] == "candidate"]
    in_known, _ = _member(cd["_u"].to_numpy(np.int64) * T + cd["_t"].to_numpy(np.int64), known_key)
    cd = cd[~in_known]
    slow[cd["_u"].to_numpy()[cd["weight"].isna().to_numpy()]] = True
    cd = cd[cd.groupby("_u", sort=False).cumcount().to_numpy() < s.max_candidates]
    has_cand = np.zeros(n_users, dtype=bool)
    has_cand[cd["_u"].to_numpy()] = True
    slow |= ~has_cand

    # arms: known tags (profile order) then candidate tags, per user
    ku, cu_ = kn["_u"].to_numpy(np.int64), cd["_u"].to_numpy(np.int64)
    n_known = np.bincount(ku, minlength=n_users)
    seq = np.r_[_group_rank(ku), n_known[cu_] + _group_rank(cu_)]
    arm_u = np.r_[ku, cu_]
    order = np.lexsort((seq, arm_u))
    arm_u = arm_u[order]
    arm_t = np.r_[kn["_t"].to_numpy(np.int64), cd["_t"].to_numpy(np.int64)][order]
    arm_known = np.r_[np.ones(len(ku), dtype=bool), np.zeros(len(cu_), dtype=bool)][order]
    arm_w = np.r_[kn["weight"].to_numpy(np.float64), cd["weight"].to_numpy(np.float64)][order]
    ev = kn["evidence_count"].to_numpy(np.float64)
    un = kn["uncertainty"].to_numpy(np.float64)
    arm_ev = np.r_[np.where(np.isnan(ev), 0.0, ev), np.zeros(len(cu_))][order]
    arm_unc = np.r_[np.where(np.isnan(un), 0.5, un), np.ones(len(cu_))][order]
    seen = pd.DatetimeIndex(kn["last_seen"]).to_numpy()
    arm_seen = np.r_[seen, np.full(len(cu_), np.datetime64("NaT"), dtype=seen.dtype)][order]

    return _ProfileArms(slow, arm_u, arm_t, arm_known, arm_w, arm_ev, arm_unc, arm_seen)


def _profiled_arms(
    inp: CandidateInputs,
    users: list[str],
    profiles: pd.DataFrame,
    champ: pd.DataFrame,
    champ_tags: np.ndarray,
    tag_pops: dict[str, list[tuple[str, float]]],
    fb: FeedbackStats,
    s: CandidateSettings,
    row_codes: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[_ArmTable, np.ndarray]:
    """The arms of the users whose known and candidate tags come from their interest profile,
    for all of them at once, as integer codes: the same rows as the per-user path
    (:func:`_arm_items`) for those users. Returns the table and the positions (in ``users``) of
    the users left to the per-user path: no profile, no usable candidate row (their candidates
    are derived), fewer items than a slate (popular tags fill it), or rows the whole-array rules
    do not cover (a tag twice, a missing candidate weight, a non-finite champion score).
    ``row_codes``: each champion row's position in ``users`` and in the items, when known."""
    n_users = len(users)
    U = pd.Index(users)
    ipt = s.items_per_tag
    # tags with items, and each tag's items most popular first, as one flat column
    tag_names = list(tag_pops)
    T = max(len(tag_names), 1)
    tag_index = pd.Index(tag_names)
    tag_len = np.array([len(tag_pops[t]) for t in tag_names], dtype=np.int64)
    tag_start = np.r_[0, np.cumsum(tag_len)[:-1]].astype(np.int64)
    item_index = pd.Index(inp.items["item_id"])
    n_items = max(len(item_index), 1)
    pop_code = item_index.get_indexer([i for t in tag_names for i, _ in tag_pops[t]]).astype(np.int64)
    pop_rel = np.array([r for t in tag_names for _, r in tag_pops[t]], dtype=np.float64)
    item_tag = np.full(len(item_index) + 1, -1, dtype=np.int64)  # index -1: unknown item
    item_tag[pop_code] = np.repeat(np.arange(len(tag_names)), tag_len)
    item_ids = np.array([*np.asarray(item_index, dtype=object).tolist(), None], dtype=object)
    # the excluded pairs' and the feedback's keys do not depend on the profile arms or on the
    # champion's rows: a second thread computes them meanwhile (most of either side's time is
    # in numpy and pandas code that releases the GIL)
    for ix in (U, tag_index, item_index):
        ix.get_indexer(ix[:1])  # each index's hash table, built before two threads look up in it
    side = in_background(_side_keys, inp.excluded, fb, U, item_index, tag_index, item_tag)

    pa = _profile_arms(profiles, U, tag_index, s)
    slow, arm_u, arm_t, arm_known, arm_w = pa.slow, pa.user, pa.tag, pa.known, pa.weight
    arm_ev, arm_unc, arm_seen = pa.evidence, pa.uncertainty, pa.last_seen
    A = len(arm_u)
    arm_key = arm_u * T + arm_t
    key_order = np.argsort(arm_key, kind="stable")
    arm_key_sorted = arm_key[key_order]

    # champion rows as codes; scores rescaled to 0.5-1 within each user's rows
    if row_codes is not None:
        cu, ci = (np.asarray(c, dtype=np.int64) for c in row_codes)
    else:
        cu = _codes(champ["user_id"].astype(str), U)
        ci = _codes(champ["item_id"], item_index)
    sc = champ["score"].to_numpy(np.float64)
    slow[cu[(cu >= 0) & ~np.isfinite(sc)]] = True
    lo = pd.Series(sc).groupby(cu).min()
    hi = pd.Series(sc).groupby(cu).max()
    lo_row, hi_row = lo.reindex(cu).to_numpy(), hi.reindex(cu).to_numpy()
    span = np.where(hi_row > lo_row, hi_row - lo_row, 1.0)
    norm = 0.5 + 0.5 * (sc - lo_row) / span
    ct = item_tag[ci]
    del champ_tags  # (the same tags, as codes: item_tag[ci])
    keys = side.result()
    ex_key, fb_key, fb_val = keys.ex_key, keys.fb_key, keys.fb_val
    keep = (cu >= 0) & (ci >= 0) & (ct >= 0)
    excluded_row, _ = _member(cu * n_items + ci, ex_key)
    keep &= ~excluded_row
    # the champion's reasons by item, per user (none when reasons are deferred)
    reasons: list[dict[str, str]] = [{} for _ in range(n_users)]
    rs = champ["reason"].to_numpy(dtype=object)
    given = np.flatnonzero(keep & pd.notna(rs))
    for r in given.tolist():
        if isinstance(rs[r], str) and rs[r]:
            reasons[int(cu[r])][str(item_ids[ci[r]])] = rs[r]
    # per arm: the user's shown items of the tag, and bought items of the tag
    arm_fbc = _lookup(arm_key, *keys.shown_per_tag)
    arm_nex = _lookup(arm_key, *keys.bought_per_tag)

    # the champion's candidates of each arm, in the champion's order
    rows = np.flatnonzero(keep)
    found, pos = _member(cu[rows] * T + ct[rows], arm_key_sorted)
    rows, c_arm = rows[found], key_order[pos[found]]
    by_arm = np.argsort(c_arm, kind="stable")
    rows, c_arm = rows[by_arm], c_arm[by_arm]
    n_c = np.bincount(c_arm, minlength=A)
    c_item, c_score, c_seq = ci[rows], norm[rows], _group_rank(c_arm)
    # popular items fill behind them up to the per-user path's limit, skipping excluded items
    # and the champion's own; enough of each tag's list is read to cover the skipped ones
    limit = np.minimum(3 * ipt, n_c + ipt + arm_fbc)
    need = np.maximum(limit - n_c, 0)
    # an arm without shown items whose champion rows come best first keeps its rows in that
    # order (champion 0.5-1, then popular below), so only its first items_per_tag rows count
    c_down = np.ones(A, dtype=bool)
    c_down[c_arm[1:][(c_arm[1:] == c_arm[:-1]) & ~(c_score[1:] <= c_score[:-1])]] = False
    plain = (arm_fbc == 0) & c_down
    need = np.where(plain, np.minimum(need, np.maximum(ipt - n_c, 0)), need)
    m = np.where(need > 0, np.minimum(tag_len[arm_t], need + n_c + arm_nex), 0)
    p_arm = np.repeat(np.arange(A), m)
    p_pos = np.arange(int(m.sum())) - np.repeat(np.cumsum(m) - m, m)
    flat = tag_start[arm_t[p_arm]] + p_pos
    p_item, p_rel = pop_code[flat], pop_rel[flat]
    p_key = arm_u[p_arm] * n_items + p_item
    skipped, _ = _member(p_key, ex_key)
    champ_here, _ = _member(p_key, np.sort(cu[rows] * n_items + c_item))
    skipped |= champ_here
    trim = ~plain[c_arm] | (c_seq < ipt)
    c_arm, c_item, c_score, c_seq = c_arm[trim], c_item[trim], c_score[trim], c_seq[trim]
    n_c = np.bincount(c_arm, minlength=A)
    p_arm, p_item, p_rel = p_arm[~skipped], p_item[~skipped], p_rel[~skipped]
    p_rank = _group_rank(p_arm)
    take = p_rank < need[p_arm]
    p_arm, p_item, p_rel, p_rank = p_arm[take], p_item[take], p_rel[take], p_rank[take]
    led = n_c[p_arm] > 0
    p_score = np.where(led, 0.1 + 0.4 * p_rel, 0.5 + 0.5 * p_rel)
    # each arm's rows together: its champion rows, then its popular rows (no sort needed)
    p_seq = n_c[p_arm] + p_rank
    n_rows = n_c + np.bincount(p_arm, minlength=A)
    base = np.cumsum(n_rows) - n_rows
    c_dest, p_dest = base[c_arm] + c_seq, base[p_arm] + p_seq
    a_arm = np.repeat(np.arange(A), n_rows)
    a_item = np.empty(len(a_arm), dtype=np.int64)
    a_score = np.empty(len(a_arm), dtype=np.float64)
    a_item[c_dest], a_item[p_dest] = c_item, p_item
    a_score[c_dest], a_score[p_dest] = c_score, p_score
    # items shown to the user without a click are discounted (only in tags with shown items)
    maybe = np.flatnonzero(arm_fbc[a_arm] > 0)
    found, pos = _member(arm_u[a_arm[maybe]] * n_items + a_item[maybe], fb_key)
    hit = maybe[found]
    n_shown, n_click = fb_val[pos[found], 0], fb_val[pos[found], 1]
    a_score[hit] = a_score[hit] * np.minimum(1.0, (2.0 + n_click) / (2.0 + n_shown))
    # best score first within each arm, ties in insertion order: only arms whose rows are not
    # already in that order are sorted
    rising = np.flatnonzero((a_arm[1:] == a_arm[:-1]) & ~(a_score[1:] <= a_score[:-1]))
    unsorted = np.zeros(A, dtype=bool)
    unsorted[a_arm[rising]] = True
    rows_u = np.flatnonzero(unsorted[a_arm])
    if len(rows_u):
        seq_u = rows_u - base[a_arm[rows_u]]
        sub = np.lexsort((seq_u, -a_score[rows_u], a_arm[rows_u]))
        a_item[rows_u] = a_item[rows_u[sub]]
        a_score[rows_u] = a_score[rows_u[sub]]
    top = _group_rank(a_arm) < ipt
    a_arm, a_item, a_score = a_arm[top], a_item[top], a_score[top]
    per_arm = np.bincount(a_arm, minlength=A)
    per_user = np.bincount(arm_u, weights=per_arm, minlength=n_users)
    slow |= per_user < s.slate_size

    # the table of the users kept here: arms with at least one item
    fast_user = ~slow
    keep_arm = fast_user[arm_u] & (per_arm > 0)
    fast_pos = np.flatnonzero(fast_user)
    kept = np.flatnonzero(keep_arm)
    item_keep = keep_arm[a_arm]
    bounds_items = np.r_[0, np.cumsum(per_arm[kept])].astype(np.int64)
    ids, scs = item_ids[a_item[item_keep]], a_score[item_keep]
    arms_per_user = np.bincount(arm_u[kept], minlength=n_users)[fast_pos]
    tag_obj = np.asarray(tag_names, dtype=object)
    user_obj = np.asarray(users, dtype=object)
    # per arm: the user's examined impressions and clicks of the tag
    exam_all = _lookup(arm_key, keys.tag_key, keys.tag_val[:, 0], 0.0)
    clicks_all = _lookup(arm_key, keys.tag_key, keys.tag_val[:, 1], 0.0)
    exam, clicks = exam_all[kept], clicks_all[kept]
    sel_known = fast_user[arm_u] & arm_known
    sel_cand = fast_user[arm_u] & ~arm_known
    table = _ArmTable(
        users=user_obj[fast_pos].tolist(),
        bounds=np.r_[0, np.cumsum(arms_per_user)].astype(np.int64),
        tags=tag_obj[arm_t[kept]],
        item_bounds=bounds_items,
        item_ids=ids,
        item_scores=scs,
        reasons=[reasons[p] for p in fast_pos.tolist()],
        known=arm_known[kept],
        weight=arm_w[kept],
        unc=arm_unc[kept],
        evidence=arm_ev[kept],
        last_seen=arm_seen[kept],
        exam=exam,
        clicks=clicks,
        known_feedback=(exam_all[sel_known], clicks_all[sel_known]),
        cand_feedback=(exam_all[sel_cand], clicks_all[sel_cand]),
    )
    return table, np.flatnonzero(slow)


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


def _join_stats(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]])


class _ArmColumns:
    """Arms of users added one at a time (the per-user path); :meth:`table` turns them into an
    :class:`_ArmTable`."""

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

    def table(self) -> _ArmTable:
        rows = [j for j, ls in enumerate(self.last_seen) if ls is not None and pd.notna(ls)]
        seen = pd.to_datetime(pd.Index([self.last_seen[j] for j in rows], dtype=object)).to_numpy()
        last_seen = np.full(len(self.last_seen), np.datetime64("NaT"), dtype=seen.dtype if rows else "M8[us]")
        last_seen[rows] = seen
        return _ArmTable(
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


@dataclass
class _ArmTable:
    """Every user's arms as flat columns, one row per user x tag, rows grouped by user in the
    order of ``users`` (user ``n`` owns rows ``bounds[n]:bounds[n + 1]``), so the per-tag
    statistics and features of all contexts are computed in whole-array operations; each
    context then holds its rows' slice. ``item_ids``/``item_scores``: every row's ranked items,
    row ``r`` owning ``item_bounds[r]:item_bounds[r + 1]``;
    ``reasons``: per user, the champion's reason by item; ``known_feedback``/``cand_feedback``:
    (examined impressions, clicks) of every (user, tag) pair chosen as a known / candidate tag
    (also those left without items), for the base rates."""

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

    @classmethod
    def merge(cls, users: list[str], a: _ArmTable | None, b: _ArmTable) -> _ArmTable:
        """The rows of ``a`` and ``b`` (disjoint users) in the order of ``users``."""
        if a is None or not a.users:
            return b
        if not b.users:
            return a
        both = a.users + b.users
        where = {u: n for n, u in enumerate(both)}
        pick = np.array([where[u] for u in users], dtype=np.int64)
        bounds = np.r_[a.bounds, a.bounds[-1] + b.bounds[1:]]
        starts, sizes = bounds[pick], np.diff(bounds)[pick]
        new_bounds = np.r_[0, np.cumsum(sizes)].astype(np.int64)
        rows = np.repeat(starts - new_bounds[:-1], sizes) + np.arange(int(sizes.sum()))
        # the items of the reordered rows
        ib = np.r_[a.item_bounds, a.item_bounds[-1] + b.item_bounds[1:]]
        i_starts, i_sizes = ib[rows], np.diff(ib)[rows]
        new_ib = np.r_[0, np.cumsum(i_sizes)].astype(np.int64)
        i_rows = np.repeat(i_starts - new_ib[:-1], i_sizes) + np.arange(int(i_sizes.sum()))
        reasons = a.reasons + b.reasons

        def cat(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            return np.concatenate([x, y])[rows]

        return cls(
            users=list(users),
            bounds=new_bounds,
            tags=cat(a.tags, b.tags),
            item_bounds=new_ib,
            item_ids=np.concatenate([a.item_ids, b.item_ids])[i_rows],
            item_scores=np.concatenate([a.item_scores, b.item_scores])[i_rows],
            reasons=[reasons[p] for p in pick.tolist()],
            known=cat(a.known, b.known),
            weight=cat(a.weight, b.weight),
            unc=cat(a.unc, b.unc),
            evidence=cat(a.evidence, b.evidence),
            last_seen=cat(a.last_seen, b.last_seen),
            exam=cat(a.exam, b.exam),
            clicks=cat(a.clicks, b.clicks),
            known_feedback=_join_stats(a.known_feedback, b.known_feedback),
            cand_feedback=_join_stats(a.cand_feedback, b.cand_feedback),
        )

    def _recency(self, as_of: pd.Timestamp) -> np.ndarray:
        """exp(-days since the known tag was last seen / 30), 0 where there is no date."""
        out = np.zeros(len(self.last_seen))
        rows = np.flatnonzero(~np.isnat(self.last_seen))
        if len(rows):
            seen = pd.DatetimeIndex(self.last_seen[rows])
            days = np.asarray((as_of - seen).total_seconds(), dtype=np.float64) / 86400.0
            out[rows] = np.exp(-np.maximum(days, 0.0) / 30.0)
        return out

    def contexts(self, inp: CandidateInputs, s: CandidateSettings, rate_known: float, rate_cand: float) -> ContextList:
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
        as_of = inp.as_of if isinstance(inp.as_of, pd.Timestamp) else pd.Timestamp(inp.as_of)
        recency = self._recency(as_of)
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
        bounds = self.bounds.tolist()
        ib = self.item_bounds.tolist()
        ids, scs = self.item_ids, self.item_scores
        n_sessions = np.array([int(inp.sessions.get(u, 0)) for u in self.users], dtype=np.int64)
        segments = [
            str(inp.segments.get(u) or ("new" if n < s.min_sessions_new else "default"))
            for u, n in zip(self.users, n_sessions.tolist(), strict=True)
        ]
        columns = ContextColumns(
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
            item_ids=ids,
            item_scores=scs,
            reasons=self.reasons,
            n_sessions=n_sessions,
            segments=segments,
        )
        sessions_list = n_sessions.tolist()

        def make(n: int) -> SlateContext:  # one user's context, when something reads it (views of the columns)
            u = self.users[n]
            lo, hi = bounds[n], bounds[n + 1]
            return SlateContext(
                user_id=u,
                tags=self.tags[lo:hi].tolist(),
                known=known_arr[lo:hi],
                prior_mean=prior_mean[lo:hi],
                prior_strength=strength[lo:hi],
                impressions=exam[lo:hi],
                clicks=clicks[lo:hi],
                features=feats[lo:hi],
                items=[ids[ib[r] : ib[r + 1]] for r in range(lo, hi)],
                item_scores=[scs[ib[r] : ib[r + 1]] for r in range(lo, hi)],
                n_sessions=sessions_list[n],
                segment=segments[n],
                reasons=self.reasons[n],
            )

        return ContextList(columns, make)
