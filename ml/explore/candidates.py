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
  sampler multiplies a tag's value by its next item's score, so stale items lower their tag.
  Only category tags are arms: every item has exactly one, so a slate never repeats an item.
* **Priors and features**: :meth:`ml.explore.context.ArmTable.contexts`, from base rates (clicks
  per examined impression of known and of candidate tags) learned from feedback here and shrunk
  to the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

from ml.explore.context import ArmTable, ContextList
from ml.explore.feedback import FeedbackStats, shrunk_rate
from ml.frames import codes_in, group_rank, lookup, member, run_starts, sorted_distinct
from ml.shop.taxonomy import slug

DEFAULT_KNOWN_RATE = 0.15
DEFAULT_CANDIDATE_RATE = 0.05


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


def build_contexts(
    inp: CandidateInputs,
    users: list[str] | np.ndarray,
    settings: CandidateSettings | None = None,
) -> ContextList:
    """One context per user in ``users`` (order kept), for all users at once in whole-array
    operations on integer codes (``tests/explore/oracles.py`` holds the same rules written one
    user at a time). Unusual input follows plain rules: an item listed twice counts once (its
    first row), champion rows with a non-finite score are left out, a profile row without a
    weight weighs 0 and a tag repeated in a user's profile counts once (its strongest row)."""
    s = settings or CandidateSettings()
    users = [str(u) for u in users]
    user_index = pd.Index(users)
    shop = _Catalogue.of(inp.items)
    keys = _side_keys(inp.excluded, inp.feedback, user_index, shop)
    champ = _champion_rows(inp, user_index, shop)
    arms = _user_arms(inp, user_index, shop, champ, s)
    offered = champ.without(member(champ.user * shop.n_items + champ.item, keys.ex_key)[0])
    table = _arm_table(users, arms, offered, keys, shop, s)
    rate_known = shrunk_rate(*table.known_feedback, s.default_known_rate)
    rate_cand = shrunk_rate(*table.cand_feedback, s.default_candidate_rate)
    return table.contexts(inp.as_of, inp.sessions, inp.segments, s.min_sessions_new, rate_known, rate_cand)


@dataclass
class _Catalogue:
    """The arm tags and their items as integer codes. Tags in name order (``tag_index``);
    tag ``t``'s items, most popular first, are ``pop_item[tag_start[t]:][:tag_len[t]]`` with
    their popularity relative to the tag's most popular item in ``pop_rel``; ``item_tag``: each
    item's tag code, with one extra -1 at the end (code -1: no item); ``popular``: the tag
    codes by shop-wide popularity; ``dept_tags``: the tag codes grouped by department, each
    department's by popularity, department ``d`` owning ``dept_bounds[d]:dept_bounds[d + 1]``;
    ``tag_dept``: each tag's department code."""

    item_index: pd.Index
    item_ids: np.ndarray
    tag_index: pd.Index
    tag_start: np.ndarray
    tag_len: np.ndarray
    pop_item: np.ndarray
    pop_rel: np.ndarray
    item_tag: np.ndarray
    popular: np.ndarray
    dept_tags: np.ndarray
    dept_bounds: np.ndarray
    tag_dept: np.ndarray

    @property
    def n_items(self) -> int:
        return max(len(self.item_index), 1)

    @property
    def n_tags(self) -> int:
        return max(len(self.tag_index), 1)

    @classmethod
    def of(cls, items: pd.DataFrame) -> _Catalogue:
        """From ``items`` (item_id, tag, department, popularity)."""
        items = items.drop_duplicates("item_id")
        by_tag = items.sort_values(["tag", "popularity", "item_id"], ascending=[True, False, True], kind="stable")
        tag_of_row, tag_names = pd.factorize(by_tag["tag"])  # sorted rows: codes in name order
        tag_index = pd.Index(tag_names)
        tag_len = np.bincount(tag_of_row, minlength=len(tag_index)).astype(np.int64)
        pops = by_tag["popularity"].to_numpy(np.float64)
        top = pd.Series(pops).groupby(tag_of_row).max().reindex(range(len(tag_index))).to_numpy()
        top = np.where(top > 0, top, 1.0)
        item_index = pd.Index(items["item_id"])
        pop_item = item_index.get_indexer(by_tag["item_id"]).astype(np.int64)
        item_tag = np.full(len(item_index) + 1, -1, dtype=np.int64)
        item_tag[pop_item] = tag_of_row
        popularity = items.groupby("tag")["popularity"].sum().sort_values(ascending=False, kind="stable")
        popular = tag_index.get_indexer(popularity.index).astype(np.int64)
        # a tag's department: that of its last item row
        dept_of = items.drop_duplicates("tag", keep="last").set_index("tag")["department"]
        dept_codes, _ = pd.factorize(dept_of.reindex(tag_index).to_numpy())
        by_dept = popular[np.argsort(dept_codes[popular], kind="stable")]
        dept_sizes = np.bincount(dept_codes, minlength=int(dept_codes.max(initial=-1)) + 1)
        return cls(
            item_index=item_index,
            item_ids=np.array([*np.asarray(item_index, dtype=object).tolist(), None], dtype=object),
            tag_index=tag_index,
            tag_start=(np.cumsum(tag_len) - tag_len).astype(np.int64),
            tag_len=tag_len,
            pop_item=pop_item,
            pop_rel=pops / top[tag_of_row],
            item_tag=item_tag,
            popular=popular,
            dept_tags=by_dept,
            dept_bounds=np.r_[0, np.cumsum(dept_sizes)].astype(np.int64),
            tag_dept=dept_codes.astype(np.int64),
        )


@dataclass
class _Champion:
    """The champion's rows of the asked users whose item has an arm tag and whose score is
    finite, in the frame's order: user, item and tag codes, score, reason; ``low``/``high``:
    per user, the lowest and highest score of its rows."""

    user: np.ndarray
    item: np.ndarray
    tag: np.ndarray
    score: np.ndarray
    reason: np.ndarray
    low: np.ndarray
    high: np.ndarray

    def without(self, drop: np.ndarray) -> _Champion:
        keep = ~drop
        rows = (self.user[keep], self.item[keep], self.tag[keep], self.score[keep], self.reason[keep])
        return _Champion(*rows, self.low, self.high)

    def scaled(self, rows: np.ndarray) -> np.ndarray:
        """The score of ``rows`` rescaled to 0.5-1 within its user's rows."""
        low, high = self.low[self.user[rows]], self.high[self.user[rows]]
        span = np.where(high > low, high - low, 1.0)
        return 0.5 + 0.5 * (self.score[rows] - low) / span

    def relative(self, rows: np.ndarray) -> np.ndarray:
        """The score of ``rows`` rescaled to 0-1 within its user's rows (1 when all are equal)."""
        low, high = self.low[self.user[rows]], self.high[self.user[rows]]
        span = np.where(high > low, high - low, 1.0)
        return np.where(high > low, (self.score[rows] - low) / span, 1.0)


def _champion_rows(inp: CandidateInputs, user_index: pd.Index, shop: _Catalogue) -> _Champion:
    """The :class:`_Champion` of ``inp.champion``, found by the rows' codes when publishing
    gives them (6M rows hold 24k items on the large shop), else by their ids."""
    codes = inp.champion_codes
    if codes is not None and len(codes.row_user) != len(inp.champion):
        raise ValueError(f"champion codes hold {len(codes.row_user)} rows, the champion frame {len(inp.champion)}")
    if codes is not None:
        user_pos = np.append(user_index.get_indexer(np.asarray([str(u) for u in codes.user_ids], dtype=object)), -1)
        item_pos = np.append(codes_in(np.asarray(codes.item_ids, dtype=object), shop.item_index), -1)
        user = user_pos[np.asarray(codes.row_user, dtype=np.int64)]  # (code -1: the appended -1)
        item = item_pos[np.asarray(codes.row_item, dtype=np.int64)]
    else:
        user = codes_in(inp.champion["user_id"].astype(str), user_index)
        item = codes_in(inp.champion["item_id"], shop.item_index)
    score = inp.champion["score"].to_numpy(np.float64)
    tag = shop.item_tag[item]
    rows = np.flatnonzero((user >= 0) & (tag >= 0) & np.isfinite(score))
    if "reason" in inp.champion:
        reason = inp.champion["reason"].to_numpy(dtype=object)[rows]
    else:
        reason = np.full(len(rows), None, dtype=object)
    user, score = user[rows], score[rows]
    low = pd.Series(score).groupby(user).min().reindex(range(len(user_index))).to_numpy()
    high = pd.Series(score).groupby(user).max().reindex(range(len(user_index))).to_numpy()
    return _Champion(user, item[rows], tag[rows], score, reason, low, high)


@dataclass
class _Arms:
    """Arms as rows grouped by user in the users' order, each user's known tags first (by
    weight), then its candidate tags (by weight): user and tag codes, known flag, weight,
    evidence, uncertainty and last seen (NaT unless a known tag's date)."""

    user: np.ndarray
    tag: np.ndarray
    known: np.ndarray
    weight: np.ndarray
    evidence: np.ndarray
    uncertainty: np.ndarray
    last_seen: np.ndarray

    def take(self, rows: np.ndarray) -> _Arms:
        return _Arms(*(getattr(self, f.name)[rows] for f in fields(self)))

    @classmethod
    def concat(cls, parts: list[_Arms]) -> _Arms:
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)))

    def by_user(self) -> _Arms:
        """The rows grouped by user, in their order within each user."""
        return self.take(np.argsort(self.user, kind="stable"))


def _user_arms(
    inp: CandidateInputs, user_index: pd.Index, shop: _Catalogue, champ: _Champion, s: CandidateSettings
) -> _Arms:
    """Every user's known and candidate tags (module docstring): a profile's rows when the user
    has a profile (known) and usable candidate rows (candidates), else derived."""
    profile, has_profile = _profile_rows(inp.profiles, user_index, shop)
    derived = _known_from_interactions(inp.interactions, ~has_profile, user_index, shop)
    known = _Arms.concat([_known_arms(profile[profile["status"] == "known"]), _known_arms(derived)]).by_user()
    known = known.take(np.flatnonzero(group_rank(known.user) < s.max_known))
    cand_rows = profile[profile["status"] == "candidate"]
    taken, _ = member(_arm_keys(cand_rows, shop), np.sort(known.user * shop.n_tags + known.tag))
    cand_rows = cand_rows[~taken]
    cand_rows = cand_rows[group_rank(cand_rows["_u"].to_numpy(np.int64)) < s.max_candidates]
    from_profile = _candidate_arms(
        cand_rows["_u"].to_numpy(np.int64), cand_rows["_t"].to_numpy(np.int64), cand_rows["weight"].to_numpy(np.float64)
    )
    derive = np.ones(len(user_index), dtype=bool)
    derive[from_profile.user] = False
    derived_cands = _derived_candidates(derive, known, champ, inp.transitions, shop, s)
    return _Arms.concat([known, from_profile, derived_cands]).by_user()


def _known_from_interactions(
    interactions: pd.DataFrame, derive: np.ndarray, user_index: pd.Index, shop: _Catalogue
) -> pd.DataFrame:
    """The known tags of the users flagged in ``derive``, from their interactions (an item's tag
    is its first row's): per user and tag (codes ``_u``, ``_t``) the share of the user's weight
    (``weight``), the events (``evidence_count``), the newest (``last_seen``) and
    ``uncertainty`` 1 / sqrt(1 + events); by user, then weight (ties: the tag's name)."""
    user = codes_in(interactions["user_id"].astype(str), user_index)
    tag = shop.item_tag[codes_in(interactions["item_id"], shop.item_index)]  # (code -1: no tag)
    rows = np.flatnonzero((user >= 0) & (tag >= 0))
    rows = rows[derive[user[rows]]]
    cells = interactions.iloc[rows][["weight", "n_events", "last_at"]].reset_index(drop=True)
    cells["key"] = user[rows] * shop.n_tags + tag[rows]  # (tag codes in name order)
    g = cells.groupby("key", as_index=False).agg(
        weight=("weight", "sum"), evidence_count=("n_events", "sum"), last_seen=("last_at", "max")
    )
    g["_u"], g["_t"] = g["key"] // shop.n_tags, g["key"] % shop.n_tags
    g["weight"] = g["weight"] / g.groupby("_u")["weight"].transform("sum").replace(0, 1.0)
    g["uncertainty"] = 1.0 / np.sqrt(1.0 + g["evidence_count"].astype(float))
    return g.sort_values(["_u", "weight"], ascending=[True, False], kind="stable")


def _arm_keys(rows: pd.DataFrame, shop: _Catalogue) -> np.ndarray:
    return rows["_u"].to_numpy(np.int64) * shop.n_tags + rows["_t"].to_numpy(np.int64)


def _profile_rows(
    profiles: pd.DataFrame | None, user_index: pd.Index, shop: _Catalogue
) -> tuple[pd.DataFrame, np.ndarray]:
    """(the profile rows of the users whose tag is an arm, with their user and tag codes
    ``_u``/``_t``, by user and descending weight, a tag once per user and status; per user,
    whether it has a profile)."""
    has_profile = np.zeros(len(user_index), dtype=bool)
    columns = ["user_id", "tag", "weight", "evidence_count", "last_seen", "uncertainty", "status"]
    if profiles is None or not len(profiles):
        return pd.DataFrame({c: [] for c in [*columns, "_u", "_t"]}), has_profile
    user = codes_in(profiles["user_id"].astype(str), user_index)
    has_profile[user[user >= 0]] = True
    rows = profiles.assign(_u=user, _t=shop.tag_index.get_indexer(profiles["tag"]))
    rows = rows[(rows["_u"] >= 0) & (rows["_t"] >= 0)]
    rows = rows.assign(weight=rows["weight"].astype(np.float64).fillna(0.0))
    rows = rows.sort_values(["_u", "weight"], ascending=[True, False], kind="stable")
    return rows.drop_duplicates(["_u", "_t", "status"]), has_profile


def _known_arms(rows: pd.DataFrame) -> _Arms:
    """Known arms from profile or derived rows (user, tag codes, weight, evidence_count,
    uncertainty, last_seen): a missing evidence counts 0, a missing uncertainty 0.5."""
    evidence = rows["evidence_count"].to_numpy(np.float64)
    uncertainty = rows["uncertainty"].to_numpy(np.float64)
    return _Arms(
        user=rows["_u"].to_numpy(np.int64),
        tag=rows["_t"].to_numpy(np.int64),
        known=np.ones(len(rows), dtype=bool),
        weight=rows["weight"].to_numpy(np.float64),
        evidence=np.where(np.isnan(evidence), 0.0, evidence),
        uncertainty=np.where(np.isnan(uncertainty), 0.5, uncertainty),
        last_seen=pd.DatetimeIndex(rows["last_seen"]).to_numpy(),
    )


def _candidate_arms(user: np.ndarray, tag: np.ndarray, weight: np.ndarray) -> _Arms:
    n = len(user)
    return _Arms(
        user, tag, np.zeros(n, dtype=bool), weight, np.zeros(n), np.ones(n), np.full(n, np.datetime64("NaT", "ns"))
    )


# (user, tag) cells the derived candidates score at once: a few arrays of 32 MB each
BLOCK_CELLS = 1 << 22


@dataclass
class _Offers:
    """Candidate tags proposed for users by one rule, in the order the rule makes them: user
    and tag codes, value. The rules come in a fixed order, so a tag's rank among a user's
    equally valued candidates is its first offer's place in the offers of all rules, in turn."""

    user: np.ndarray
    tag: np.ndarray
    value: np.ndarray


def _derived_candidates(
    derive: np.ndarray,
    known: _Arms,
    champ: _Champion,
    transitions: pd.DataFrame | None,
    shop: _Catalogue,
    s: CandidateSettings,
) -> _Arms:
    """The candidate tags of the users flagged in ``derive`` (those without a usable profile
    candidate): the tags the champion reaches (1 + its relative score, the highest), plus for
    every transition from a known tag 1 + weight x probability, or else the department siblings
    of the known tags (0.5 x department weight / (1 + rank)) or the shop's most popular tags
    (0.01 / (1 + rank)) when worth more; never a known tag; the ``max_candidates`` best.

    Each block of users is scored on a dense (user, tag) grid (``BLOCK_CELLS`` cells at most)."""
    known = known.take(np.flatnonzero(derive[known.user]))
    moves = _Moves.of(transitions, shop)
    users = np.flatnonzero(derive)
    step = max(1, BLOCK_CELLS // shop.n_tags)
    none = np.zeros(0, dtype=np.int64)
    parts = [_candidate_arms(none, none, np.zeros(0))]
    for lo in range(0, len(users), step):
        parts.append(_block_candidates(users[lo : lo + step], len(derive), known, champ, moves, shop, s))
    return _Arms.concat(parts)


def _block_candidates(
    block: np.ndarray,
    n_users: int,
    known: _Arms,
    champ: _Champion,
    moves: _Moves,
    shop: _Catalogue,
    s: CandidateSettings,
) -> _Arms:
    """:func:`_derived_candidates` of the users ``block`` (ascending codes among ``n_users``),
    on a grid of one row per user and one column per tag; ``known``: any users' known arms."""
    n_tags = shop.n_tags
    row_of = np.full(n_users, -1, dtype=np.int64)
    row_of[block] = np.arange(len(block))
    in_block = row_of >= 0
    known = known.take(np.flatnonzero(in_block[known.user]))
    known_rank = group_rank(known.user)
    moved, turn = _transition_offers(known, known_rank, moves)
    offers = [
        _champion_offers(in_block, champ),
        moved,
        _department_offers(known, known_rank, shop),
        _popular_offers(in_block, shop, s),
    ]
    cells = [row_of[o.user] * n_tags + o.tag for o in offers]
    size = len(block) * n_tags
    first = np.full(size, np.iinfo(np.int64).max)  # each cell's first offer, over the rules in turn
    made = np.cumsum([0, *(len(c) for c in cells)])
    for c, start in zip(cells, made[:-1], strict=True):
        np.minimum.at(first, c, np.arange(start, start + len(c)))
    worth = np.zeros(size)
    np.maximum.at(worth, cells[0], offers[0].value)
    for k in range(int(turn.max(initial=-1)) + 1):  # a cell's transitions added one at a time, as made
        at = np.flatnonzero(turn == k)
        worth[cells[1][at]] = worth[cells[1][at]] + 1.0 + moved.value[at]
    other = np.zeros(size)
    for c, o in zip(cells[2:], offers[2:], strict=True):
        np.maximum.at(other, c, o.value)
    worth = np.maximum(worth, other)
    usable = first < np.iinfo(np.int64).max
    usable[row_of[known.user] * n_tags + known.tag] = False
    # per user: by worth, ties by the first offer
    by_first = np.argsort(first.reshape(-1, n_tags), axis=1)
    rank_key = np.where(usable, -worth, np.inf).reshape(-1, n_tags)
    by_worth = np.argsort(np.take_along_axis(rank_key, by_first, axis=1), axis=1, kind="stable")
    best = np.take_along_axis(by_first, by_worth, axis=1)[:, : s.max_candidates]
    cell = (np.arange(len(block))[:, None] * n_tags + best).ravel()
    cell = cell[usable[cell]]
    return _candidate_arms(block[cell // n_tags], cell % n_tags, worth[cell])


def _champion_offers(derive: np.ndarray, champ: _Champion) -> _Offers:
    rows = np.flatnonzero(derive[champ.user])
    return _Offers(champ.user[rows], champ.tag[rows], 1.0 + champ.relative(rows))


@dataclass(frozen=True)
class _Moves:
    """The transitions between arm tags as codes, grouped by origin in the table's order:
    ``target``, ``probability``; origin tag ``t`` owns rows ``start[t]:start[t] + count[t]``;
    ``repeat``: how many earlier rows name the same origin and target (0 unless the table
    repeats a pair), ``repeats`` one more than the largest."""

    target: np.ndarray
    probability: np.ndarray
    start: np.ndarray
    count: np.ndarray
    repeat: np.ndarray
    repeats: int

    @classmethod
    def of(cls, transitions: pd.DataFrame | None, shop: _Catalogue) -> _Moves:
        if transitions is None or not len(transitions):
            transitions = pd.DataFrame({"from_tag": [], "to_tag": [], "probability": []})
        origin = shop.tag_index.get_indexer(transitions["from_tag"].astype(str))
        target = shop.tag_index.get_indexer(transitions["to_tag"].astype(str))
        rows = np.flatnonzero((origin >= 0) & (target >= 0))
        rows = rows[np.argsort(origin[rows], kind="stable")]
        count = np.bincount(origin[rows], minlength=shop.n_tags)
        pairs = pd.DataFrame({"origin": origin[rows], "target": target[rows]})
        repeat = pairs.groupby(["origin", "target"]).cumcount().to_numpy(np.int64)
        return cls(
            target=target[rows],
            probability=transitions["probability"].to_numpy(np.float64)[rows],
            start=np.cumsum(count) - count,
            count=count,
            repeat=repeat,
            repeats=int(repeat.max(initial=-1)) + 1,
        )


def _transition_offers(known: _Arms, known_rank: np.ndarray, moves: _Moves) -> tuple[_Offers, np.ndarray]:
    """weight x probability of every transition from a known tag to an arm tag (the value
    :func:`_block_candidates` adds to 1 + the running value), and each offer's turn: a
    (user, tag)'s offers in the order made, known tag by known tag, have increasing turns."""
    n = moves.count[known.tag]
    arm = np.repeat(np.arange(len(known.tag)), n)
    pick = np.repeat(moves.start[known.tag], n) + group_rank(arm)
    turn = known_rank[arm] * moves.repeats + moves.repeat[pick]
    return _Offers(known.user[arm], moves.target[pick], known.weight[arm] * moves.probability[pick]), turn


def _department_offers(known: _Arms, known_rank: np.ndarray, shop: _Catalogue) -> _Offers:
    """The tags of the departments of the known tags, by department weight (the sum of weight
    + 0.01 over its known tags, added in their order), then by popularity within it."""
    dept = shop.tag_dept[known.tag]
    key = known.user * (int(shop.tag_dept.max(initial=0)) + 1) + dept
    order = np.lexsort((known_rank, key))
    key_sorted = key[order]
    new = run_starts(key_sorted)
    group = np.cumsum(new) - 1
    n_groups = int(new.sum())
    weight = np.zeros(n_groups)
    step = group_rank(group)
    for k in range(int(step.max(initial=-1)) + 1):
        at = step == k
        weight[group[at]] = weight[group[at]] + known.weight[order][at] + 0.01
    first = np.flatnonzero(new)
    user, dept_of, seen = known.user[order][first], dept[order][first], known_rank[order][first]
    by_weight = np.lexsort((seen, -weight, user))
    user, dept_of, weight = user[by_weight], dept_of[by_weight], weight[by_weight]
    size = np.diff(shop.dept_bounds)[dept_of]
    row = np.repeat(np.arange(len(user)), size)
    rank = group_rank(row)
    tag = shop.dept_tags[shop.dept_bounds[dept_of][row] + rank]
    return _Offers(user[row], tag, 0.5 * weight[row] / (1.0 + rank))


def _popular_offers(derive: np.ndarray, shop: _Catalogue, s: CandidateSettings) -> _Offers:
    n = min(s.max_candidates, len(shop.popular))
    users = np.flatnonzero(derive)
    rank = np.tile(np.arange(n), len(users))
    return _Offers(np.repeat(users, n), shop.popular[rank], 0.01 / (1.0 + rank))


def _arm_table(
    users: list[str], arms: _Arms, offered: _Champion, keys: _SideKeys, shop: _Catalogue, s: CandidateSettings
) -> ArmTable:
    """The :class:`ArmTable` of ``arms``, each with its items, the arms without items left out,
    and popular tags added to a user's arms until its slate is full."""
    own = _arm_items(arms.user, arms.tag, offered, keys, shop, s)
    extra, extra_items = _filler_arms(len(users), arms, own, offered, keys, shop, s)
    all_arms = _Arms.concat([arms, extra])
    # (examined impressions, clicks) of each arm, the user's own arms first
    feedback = lookup(all_arms.user * shop.n_tags + all_arms.tag, keys.tag_key, keys.tag_val, 0.0)
    own_feedback = feedback[: len(arms.user)]
    order = np.argsort(all_arms.user, kind="stable")
    all_arms, feedback = all_arms.take(order), feedback[order]
    items = _ArmItems.chain([own, extra_items]).reorder(order)
    per_arm = np.bincount(items.arm, minlength=len(order))
    kept = np.flatnonzero(per_arm > 0)
    return ArmTable(
        users=users,
        bounds=np.r_[0, np.cumsum(np.bincount(all_arms.user[kept], minlength=len(users)))].astype(np.int64),
        tags=np.asarray(shop.tag_index, dtype=object)[all_arms.tag[kept]],
        item_bounds=np.r_[0, np.cumsum(per_arm[kept])].astype(np.int64),
        item_ids=shop.item_ids[items.item],
        item_scores=items.score,
        reasons=_reasons(len(users), offered, shop),
        known=all_arms.known[kept],
        weight=all_arms.weight[kept],
        unc=all_arms.uncertainty[kept],
        evidence=all_arms.evidence[kept],
        last_seen=all_arms.last_seen[kept],
        exam=feedback[kept, 0],
        clicks=feedback[kept, 1],
        known_feedback=(own_feedback[arms.known, 0], own_feedback[arms.known, 1]),
        cand_feedback=(own_feedback[~arms.known, 0], own_feedback[~arms.known, 1]),
    )


def _reasons(n_users: int, offered: _Champion, shop: _Catalogue) -> list[dict[str, str]]:
    """Per user, the champion's reason by item (none when the reasons are deferred)."""
    reasons: list[dict[str, str]] = [{} for _ in range(n_users)]
    for r in np.flatnonzero(pd.notna(offered.reason)).tolist():
        text = offered.reason[r]
        if isinstance(text, str) and text:
            reasons[int(offered.user[r])][str(shop.item_ids[offered.item[r]])] = text
    return reasons


def _filler_arms(
    n_users: int,
    arms: _Arms,
    own: _ArmItems,
    offered: _Champion,
    keys: _SideKeys,
    shop: _Catalogue,
    s: CandidateSettings,
) -> tuple[_Arms, _ArmItems]:
    """The popular tags (not among a user's ``arms``, whose items are ``own``) added, most
    popular first, while the user's arms hold fewer items than a slate; with their items. The
    next (missing items + own arms) popular tags of a short user hold enough tags; a tag
    without items for the user may leave it short for another round."""
    have = np.bincount(arms.user[own.arm], minlength=n_users)
    n_own = np.bincount(arms.user, minlength=n_users)
    own_key = np.sort(arms.user * shop.n_tags + arms.tag)
    start = np.zeros(n_users, dtype=np.int64)
    n_tags = len(shop.popular)
    added: list[_Arms] = []
    items: list[_ArmItems] = []
    while True:
        short = np.flatnonzero((have < s.slate_size) & (start < n_tags))
        if not len(short):
            break
        span = np.minimum(s.slate_size - have[short] + n_own[short], n_tags - start[short])
        user = np.repeat(short, span)
        tag = shop.popular[np.repeat(start[short], span) + group_rank(user)]
        start[short] += span
        mine, _ = member(user * shop.n_tags + tag, own_key)
        user, tag = user[~mine], tag[~mine]
        found = _arm_items(user, tag, offered, keys, shop, s)
        count = np.bincount(found.arm, minlength=len(user))
        before = np.cumsum(count) - count
        before = have[user] + before - before[np.arange(len(user)) - group_rank(user)]  # from the user's first row
        take = np.flatnonzero((before < s.slate_size) & (count > 0))
        np.add.at(have, user[take], count[take])
        added.append(_candidate_arms(user[take], tag[take], np.zeros(len(take))))
        items.append(found.reorder(take))
    if not added:
        return _candidate_arms(*(np.zeros(0, dtype=np.int64),) * 2, np.zeros(0)), _ArmItems.empty()
    filler, filler_items = _Arms.concat(added), _ArmItems.chain(items)
    order = np.argsort(filler.user, kind="stable")
    return filler.take(order), filler_items.reorder(order)


@dataclass
class _ArmItems:
    """Ranked items of the arms ``0..n_arms - 1``: one row per (arm, item, score), grouped by
    arm in arm order."""

    arm: np.ndarray
    item: np.ndarray
    score: np.ndarray
    n_arms: int

    @classmethod
    def empty(cls) -> _ArmItems:
        return cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0), 0)

    @classmethod
    def chain(cls, parts: list[_ArmItems]) -> _ArmItems:
        """The parts' arms numbered one after the other."""
        offset = np.cumsum([0, *(p.n_arms for p in parts)])
        return cls(
            np.concatenate([p.arm + o for p, o in zip(parts, offset[:-1].tolist(), strict=True)]),
            np.concatenate([p.item for p in parts]),
            np.concatenate([p.score for p in parts]),
            int(offset[-1]),
        )

    def subset(self, rows: np.ndarray) -> _ArmItems:
        return _ArmItems(self.arm[rows], self.item[rows], self.score[rows], self.n_arms)

    def reorder(self, order: np.ndarray) -> _ArmItems:
        """The items of the arms ``order`` (arm ``n`` of the result is arm ``order[n]``)."""
        counts = np.bincount(self.arm, minlength=self.n_arms)
        sizes = counts[order]
        new_start = np.cumsum(sizes) - sizes
        rows = np.repeat((np.cumsum(counts) - counts)[order] - new_start, sizes) + np.arange(int(sizes.sum()))
        return _ArmItems(np.repeat(np.arange(len(order)), sizes), self.item[rows], self.score[rows], len(order))


def _arm_items(
    user: np.ndarray, tag: np.ndarray, offered: _Champion, keys: _SideKeys, shop: _Catalogue, s: CandidateSettings
) -> _ArmItems:
    """The items of the arms (``user``, ``tag``), each pair once (module docstring): the
    champion's candidates of the tag (0.5-1), then the tag's popular items (0.1-0.5, or 0.5-1
    in a tag the champion does not reach), never a bought one, discounted by impressions
    without a click, best first, at most ``items_per_tag``."""
    ipt = s.items_per_tag
    key = user * shop.n_tags + tag
    shown = lookup(key, *keys.shown_per_tag)
    champion = _champion_items(key, offered, shop)
    led = np.bincount(champion.arm, minlength=len(key))
    # only items the user was shown can be discounted, so popular items beyond the first
    # items_per_tag + (shown items of the tag) can never make the cut; an arm without shown
    # items whose champion rows come best first keeps that order: its first items_per_tag count
    need = np.maximum(np.minimum(3 * ipt, led + ipt + shown) - led, 0)
    plain = (shown == 0) & _never_rising(champion)
    need = np.where(plain, np.minimum(need, np.maximum(ipt - led, 0)), need)
    popular = _popular_items(user, tag, need, led, champion, keys, shop)
    champion = champion.subset(~plain[champion.arm] | (group_rank(champion.arm) < ipt))
    rows = _champion_then_popular(champion, popular)
    _discount_shown(rows, user, shown, keys, shop)
    return _best_first(rows, ipt)


def _champion_items(key: np.ndarray, offered: _Champion, shop: _Catalogue) -> _ArmItems:
    """The offered champion rows of each arm (``key``: user x tags + tag), in the champion's
    order, scored 0.5-1."""
    order = np.argsort(key, kind="stable")
    found, pos = member(offered.user * shop.n_tags + offered.tag, key[order])
    rows, arm = np.flatnonzero(found), order[pos[found]]
    by_arm = np.argsort(arm, kind="stable")
    rows, arm = rows[by_arm], arm[by_arm]
    return _ArmItems(arm, offered.item[rows], offered.scaled(rows), len(key))


def _never_rising(rows: _ArmItems) -> np.ndarray:
    """Per arm, whether its rows' scores never rise."""
    out = np.ones(rows.n_arms, dtype=bool)
    arm, score = rows.arm, rows.score
    out[arm[1:][(arm[1:] == arm[:-1]) & ~(score[1:] <= score[:-1])]] = False
    return out


def _popular_items(
    user: np.ndarray,
    tag: np.ndarray,
    need: np.ndarray,
    led: np.ndarray,
    champion: _ArmItems,
    keys: _SideKeys,
    shop: _Catalogue,
) -> _ArmItems:
    """Per arm, its tag's first ``need`` popular items that the user did not buy and the
    champion does not propose (score: popularity relative to the tag's top item); enough of
    each tag's list is read to cover the skipped ones."""
    bought = lookup(user * shop.n_tags + tag, *keys.bought_per_tag)
    n_read = np.where(need > 0, np.minimum(shop.tag_len[tag], need + led + bought), 0)
    arm = np.repeat(np.arange(len(user)), n_read)
    flat = shop.tag_start[tag[arm]] + group_rank(arm)
    item = shop.pop_item[flat]
    pair = user[arm] * shop.n_items + item
    skip = np.zeros(len(pair), dtype=bool)
    proposed = np.sort(user[champion.arm] * shop.n_items + champion.item)
    for per_arm, pairs in ((bought, keys.ex_key), (led, proposed)):
        look = np.flatnonzero(per_arm[arm] > 0)  # (an arm with no bought or proposed item skips none)
        skip[look] |= member(pair[look], pairs)[0]
    rows = np.flatnonzero(~skip)
    rows = rows[group_rank(arm[rows]) < need[arm[rows]]]
    return _ArmItems(arm[rows], item[rows], shop.pop_rel[flat[rows]], len(user))


def _champion_then_popular(champion: _ArmItems, popular: _ArmItems) -> _ArmItems:
    """Each arm's champion rows, then its popular rows, scored 0.1-0.5 behind the champion's
    or 0.5-1 when the champion has none."""
    n = champion.n_arms
    n_champion = np.bincount(champion.arm, minlength=n)
    led = n_champion[popular.arm] > 0
    popular_score = np.where(led, 0.1 + 0.4 * popular.score, 0.5 + 0.5 * popular.score)
    n_rows = n_champion + np.bincount(popular.arm, minlength=n)
    base = np.cumsum(n_rows) - n_rows
    champion_at = base[champion.arm] + group_rank(champion.arm)
    popular_at = base[popular.arm] + n_champion[popular.arm] + group_rank(popular.arm)
    item = np.empty(int(n_rows.sum()), dtype=np.int64)
    score = np.empty(len(item), dtype=np.float64)
    item[champion_at], item[popular_at] = champion.item, popular.item
    score[champion_at], score[popular_at] = champion.score, popular_score
    return _ArmItems(np.repeat(np.arange(n), n_rows), item, score, n)


def _discount_shown(rows: _ArmItems, user: np.ndarray, shown: np.ndarray, keys: _SideKeys, shop: _Catalogue) -> None:
    """Scores of items shown to the user times min(1, (2 + clicks) / (2 + impressions)), in
    place (only arms whose tag has shown items are looked at)."""
    maybe = np.flatnonzero(shown[rows.arm] > 0)
    found, pos = member(user[rows.arm[maybe]] * shop.n_items + rows.item[maybe], keys.fb_key)
    hit = maybe[found]
    n_shown, n_click = keys.fb_val[pos[found], 0], keys.fb_val[pos[found], 1]
    rows.score[hit] = rows.score[hit] * np.minimum(1.0, (2.0 + n_click) / (2.0 + n_shown))


def _best_first(rows: _ArmItems, limit: int) -> _ArmItems:
    """Each arm's rows best score first, ties in their order, the first ``limit`` (only arms
    whose rows are not already in that order are sorted)."""
    arm, score = rows.arm, rows.score
    rising = np.flatnonzero((arm[1:] == arm[:-1]) & ~(score[1:] <= score[:-1]))
    unsorted = np.zeros(rows.n_arms, dtype=bool)
    unsorted[arm[rising]] = True
    moved = np.flatnonzero(unsorted[arm])
    if len(moved):
        sub = moved[np.lexsort((moved, -score[moved], arm[moved]))]
        rows.item[moved], rows.score[moved] = rows.item[sub], rows.score[sub]
    return rows.subset(np.flatnonzero(group_rank(arm) < limit))


@dataclass
class _SideKeys:
    """The integer keys the arms' items and statistics are looked up by:
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


def _side_keys(ex: pd.DataFrame, fb: FeedbackStats, users: pd.Index, shop: _Catalogue) -> _SideKeys:
    """The :class:`_SideKeys` of the excluded pairs ``ex`` and the feedback ``fb`` of ``users``."""
    n_items, T, item_tag = shop.n_items, shop.n_tags, shop.item_tag
    # excluded (bought) pairs, once each
    eu, ei = codes_in(ex["user_id"].astype(str), users), codes_in(ex["item_id"].astype(str), shop.item_index)
    ok = (eu >= 0) & (ei >= 0)
    ex_key, _ = sorted_distinct(eu[ok] * n_items + ei[ok])
    ex_u, ex_i = ex_key // n_items, ex_key % n_items
    tagged = item_tag[ex_i] >= 0
    bought_per_tag = sorted_distinct(ex_u[tagged] * T + item_tag[ex_i][tagged])
    # feedback: per (user, item) impressions and clicks, per (user, tag) the user's shown items
    ui_users, ui_items, fv = fb.columns("user_item")
    fu, fi = codes_in(ui_users, users), codes_in(ui_items, shop.item_index)
    ok = (fu >= 0) & (fi >= 0)
    fb_key = fu[ok] * n_items + fi[ok]
    fb_order = np.argsort(fb_key, kind="stable")
    fb_key, fb_val = fb_key[fb_order], fv[ok][fb_order]
    fb_tag = item_tag[fi[ok]][fb_order]
    shown_per_tag = sorted_distinct((fb_key // n_items * T + fb_tag)[fb_tag >= 0])
    # per (user, tag): examined impressions and clicks
    ut_users, ut_tags, tv = fb.columns("user_tag")
    tu, tt = codes_in(ut_users, users), codes_in(ut_tags, shop.tag_index)
    ok = (tu >= 0) & (tt >= 0)
    t_key = tu[ok] * T + tt[ok]
    t_order = np.argsort(t_key, kind="stable")
    return _SideKeys(ex_key, fb_key, fb_val, shown_per_tag, bought_per_tag, t_key[t_order], tv[ok][t_order])
