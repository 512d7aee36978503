"""User interest profiles over tags, computed from behaviour.

Evidence: every item-level event of ``marts.interaction_events`` (its ``weight`` is the
implicit-feedback weight per event type: view 1, click 2, cart 3, review 4, purchase 5) times
the item's tag score, and every search whose query maps to tags (:class:`QueryTagger`), all
decayed by 0.5^(age_days / half_life_days) at the profile's ``as_of``.

Per user and tag: ``weight`` is the tag's share of the user's decayed evidence within the tag's
kind (categories sum to 1, styles sum to 1, …); ``evidence_count`` counts supporting events
(engagements plus searches); ``last_seen`` is the latest one; ``uncertainty`` is
1 / sqrt(1 + evidence_count) (1 = nothing seen).

A tag is **known** with at least ``min_evidence`` engagement events, a share of at least
``min_share`` and at least ``min_lift`` times the tag's share among all users: an interest
stands out from the shop's average (a user who views budget brands as often as everybody else
is not "interested in budget"). A tag that is not known can be a **candidate** (plenty of
evidence at the shop's average rate makes it neither), with the first reason that applies:

* ``searched_not_engaged`` — the user searched for it but never engaged with it;
* ``low_evidence`` — engaged, but too few events, or standing out with too small a share;
* ``graph_adjacent`` — a sibling (same parent in ``reference.tag_vocabulary``) of a known tag;
* ``segment_popular`` — known by many users of the user's segment (``ml.user_segments`` when
  present, else the department of the user's strongest category).

At most ``max_candidates`` candidates per user are kept: by reason in that order, then by the
user's lift for the tag (own evidence) or its popularity in the user's segment (priors).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.tagging.vocabulary import Vocabulary

USER_ID = "user_id"
ITEM_ID = "item_id"
TAG = "tag"
SCORE = "score"
EVENT_AT = "event_at"
WEIGHT = "weight"
QUERY = "search_query"
SEGMENT = "segment"
SHARE = "share"
ALL_USERS = "__all_users__"  # the pseudo-segment of the whole shop in popularity tables
KNOWN = "known"
CANDIDATE = "candidate"
REASONS = ("searched_not_engaged", "low_evidence", "graph_adjacent", "segment_popular")
OUTPUT_COLUMNS = [
    "user_id",
    "tag",
    "weight",
    "evidence_count",
    "last_seen",
    "uncertainty",
    "status",
    "candidate_reason",
]


class QueryTagger:
    """Maps search queries to tags through the catalogue: the ``top_k`` items most similar to
    the query (TF-IDF cosine of character 3–5-grams over item text, so ``helmets`` finds
    ``helmet``) vote with their tags, weighted by similarity. A tag is kept when its share of
    the vote reaches ``min_share`` and at least ``min_lift`` times its share of the catalogue
    (so tags every other item carries, like a common brand tier, do not ride along)."""

    def __init__(self, top_k: int = 20, min_share: float = 0.4, min_lift: float = 2.0):
        self.top_k = top_k
        self.min_share = min_share
        self.min_lift = min_lift

    def fit(self, item_texts: Sequence[str], item_tags: Sequence[Sequence[str]]) -> QueryTagger:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.preprocessing import MultiLabelBinarizer

        self.vectorizer_ = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, strip_accents="unicode", lowercase=True
        )
        self.items_ = self.vectorizer_.fit_transform(list(item_texts))
        self.binarizer_ = MultiLabelBinarizer(sparse_output=True)
        self.tag_matrix_ = self.binarizer_.fit_transform([list(t) for t in item_tags]).tocsr().astype(np.float64)
        n = max(self.tag_matrix_.shape[0], 1)
        self.tag_share_ = np.asarray(self.tag_matrix_.sum(axis=0)).ravel() / n
        return self

    def transform(self, queries: Sequence[str]) -> pd.DataFrame:
        """Rows (search_query, tag, share) for the distinct non-empty queries."""
        qs = sorted({q for q in queries if isinstance(q, str) and q.strip()})
        if not qs or self.items_.shape[0] == 0:
            return pd.DataFrame({QUERY: [], TAG: [], SHARE: []})
        sims = (self.vectorizer_.transform(qs) @ self.items_.T).toarray()
        k = min(self.top_k, sims.shape[1])
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        rows = []
        tags = self.binarizer_.classes_
        for qi, q in enumerate(qs):
            s = sims[qi, top[qi]]
            keep = top[qi][s > 0]
            s = s[s > 0]
            if s.sum() <= 0:
                continue
            votes = np.asarray(self.tag_matrix_[keep].T @ s).ravel() / s.sum()
            ok = (votes >= self.min_share) & (votes >= self.min_lift * self.tag_share_)
            for j in np.flatnonzero(ok):
                rows.append((q, str(tags[j]), float(votes[j])))
        return pd.DataFrame(rows, columns=[QUERY, TAG, SHARE])


@dataclass(frozen=True)
class InterestProfiler:
    """Aggregates behaviour into interest profiles (see the module docstring for the rules)."""

    half_life_days: float = 30.0
    search_weight: float = 1.0
    min_evidence: int = 2
    min_share: float = 0.1
    min_lift: float = 1.5
    max_candidates: int = 5
    adjacent_per_tag: int = 2
    segment_top: int = 3

    def __post_init__(self) -> None:
        if self.half_life_days <= 0:
            raise ValueError(f"half_life_days must be > 0, got {self.half_life_days}")
        if self.search_weight < 0:
            raise ValueError(f"search_weight must be >= 0, got {self.search_weight}")
        if self.min_evidence < 1:
            raise ValueError(f"min_evidence must be >= 1, got {self.min_evidence}")
        if not 0 <= self.min_share <= 1:
            raise ValueError(f"min_share must be in [0, 1], got {self.min_share}")
        if self.min_lift < 0:
            raise ValueError(f"min_lift must be >= 0, got {self.min_lift}")
        for name in ("max_candidates", "adjacent_per_tag", "segment_top"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")

    def profile(
        self,
        events: pd.DataFrame,
        item_tags: pd.DataFrame,
        vocabulary: Vocabulary,
        as_of: pd.Timestamp,
        searches: pd.DataFrame | None = None,
        query_tags: pd.DataFrame | None = None,
        segments: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        """Profiles as of ``as_of`` (events at or after it are ignored).

        ``events``: user_id, item_id, event_at, weight. ``item_tags``: item_id, tag, score.
        ``searches``: user_id, search_query, event_at. ``query_tags``: search_query, tag, share.
        ``segments``: user_id, segment. Returns :data:`OUTPUT_COLUMNS`.
        """
        as_of = pd.Timestamp(as_of)
        p = self._evidence(events, item_tags, as_of, searches, query_tags)
        if p.empty:
            return pd.DataFrame({c: [] for c in OUTPUT_COLUMNS})
        p["kind"] = [vocabulary.kind(t) for t in p[TAG]]
        raw = p["engaged_w"] + p["search_w"]
        total = raw.groupby([p[USER_ID], p["kind"]]).transform("sum")
        p[WEIGHT] = np.where(total > 0, raw / total.where(total > 0, 1.0), 0.0)
        p["evidence_count"] = p["engaged_n"] + p["search_n"]
        p["last_seen"] = p[["engaged_last", "search_last"]].max(axis=1)
        # the tag's share of all users' evidence within its kind: the population's base rate
        kind_total = raw.groupby(p["kind"]).transform("sum")
        base = raw.groupby(p[TAG]).transform("sum") / kind_total.where(kind_total > 0, 1.0)
        p["_lift"] = p[WEIGHT] / base.where(base > 0, 1.0)
        enough = p["engaged_n"] >= self.min_evidence
        stands_out = p["_lift"] >= self.min_lift
        known = enough & (p[WEIGHT] >= self.min_share) & stands_out
        p["status"] = np.where(known, KNOWN, CANDIDATE)
        reason = np.where(p["engaged_n"] == 0, "searched_not_engaged", "low_evidence")
        p["candidate_reason"] = pd.Series(reason, index=p.index, dtype=object).where(~known, None)
        known_rows = p[known]
        seg = self._segments(known_rows, vocabulary, segments)
        popularity = self._popularity(known_rows, seg)
        prior = self._prior_candidates(known_rows, vocabulary, seg, popularity)
        # observed tags become candidates when thin (few events) or standing out (small share);
        # plenty of evidence at the shop's average rate is no sign of interest
        observed = p[~known & (~enough | stands_out)]
        observed = observed[[USER_ID, TAG, WEIGHT, "evidence_count", "last_seen", "candidate_reason", "_lift"]]
        cands = pd.concat([observed, prior], ignore_index=True)
        cands = cands[~cands.set_index([USER_ID, TAG]).index.isin(known_rows.set_index([USER_ID, TAG]).index)]
        cands = self._rank_candidates(cands, seg, popularity)
        out = pd.concat([known_rows.assign(candidate_reason=None), cands.assign(status=CANDIDATE)], ignore_index=True)
        out["evidence_count"] = out["evidence_count"].fillna(0).astype(np.int64)
        out["uncertainty"] = 1.0 / np.sqrt(1.0 + out["evidence_count"].to_numpy(np.float64))
        out[WEIGHT] = out[WEIGHT].fillna(0.0).astype(np.float64)
        out["last_seen"] = pd.to_datetime(out["last_seen"])
        out = out[OUTPUT_COLUMNS].sort_values([USER_ID, "status", WEIGHT, TAG], ascending=[True, False, False, True])
        return out.reset_index(drop=True)

    def _evidence(
        self,
        events: pd.DataFrame,
        item_tags: pd.DataFrame,
        as_of: pd.Timestamp,
        searches: pd.DataFrame | None,
        query_tags: pd.DataFrame | None,
    ) -> pd.DataFrame:
        """Per (user, tag): the decayed engagement (``engaged_w``/``_n``/``_last``) and search
        (``search_w``/``_n``/``_last``) evidence before ``as_of``; zeros where there is none."""
        ev = events[events[EVENT_AT] < as_of]
        decay = np.power(0.5, (as_of - ev[EVENT_AT]).dt.total_seconds().to_numpy() / 86400.0 / self.half_life_days)
        ev = ev.assign(_w=ev[WEIGHT].to_numpy(np.float64) * decay)
        et = ev.merge(item_tags[[ITEM_ID, TAG, SCORE]], on=ITEM_ID, how="inner")
        engaged = (
            et.assign(_w=et["_w"] * et[SCORE])
            .groupby([USER_ID, TAG], as_index=False)
            .agg(engaged_w=("_w", "sum"), engaged_n=("_w", "size"), engaged_last=(EVENT_AT, "max"))
        )
        frames = [engaged]
        if searches is not None and query_tags is not None and len(searches) and len(query_tags):
            se = searches[searches[EVENT_AT] < as_of]
            sd = np.power(0.5, (as_of - se[EVENT_AT]).dt.total_seconds().to_numpy() / 86400.0 / self.half_life_days)
            se = se.assign(_w=self.search_weight * sd).merge(query_tags, on=QUERY, how="inner")
            searched = (
                se.assign(_w=se["_w"] * se[SHARE])
                .groupby([USER_ID, TAG], as_index=False)
                .agg(search_w=("_w", "sum"), search_n=("_w", "size"), search_last=(EVENT_AT, "max"))
            )
            frames.append(searched)
        p = frames[0]
        for f in frames[1:]:
            p = p.merge(f, on=[USER_ID, TAG], how="outer")
        for c in ("engaged_w", "search_w"):
            p[c] = p[c].fillna(0.0) if c in p else 0.0
        for c in ("engaged_n", "search_n"):
            p[c] = p[c].fillna(0).astype(np.int64) if c in p else 0
        if "search_last" not in p:
            p["search_last"] = pd.NaT
        return p

    # ---- candidates from the tag graph and the user's segment ------------------------------
    @staticmethod
    def _segments(known: pd.DataFrame, vocabulary: Vocabulary, segments: pd.DataFrame | None) -> pd.DataFrame:
        """user_id -> segment: the given segments, else the parent of the strongest known tag
        that has a parent (the department of the user's main category)."""
        if segments is not None and len(segments):
            return segments[[USER_ID, SEGMENT]].drop_duplicates(USER_ID).astype({SEGMENT: str})
        k = known.assign(_parent=[vocabulary.parents.get(t, "") for t in known[TAG]])
        k = k[k["_parent"] != ""].sort_values([USER_ID, WEIGHT, TAG], ascending=[True, False, True])
        top = k.drop_duplicates(USER_ID)
        return pd.DataFrame({USER_ID: top[USER_ID].to_numpy(), SEGMENT: top["_parent"].to_numpy()})

    @staticmethod
    def _popularity(known: pd.DataFrame, seg: pd.DataFrame) -> pd.DataFrame:
        """(segment, tag, popularity): share of the segment's users who know the tag; the
        segment :data:`ALL_USERS` is the whole shop."""
        users = known[[USER_ID, TAG]].merge(seg, on=USER_ID, how="inner")
        n_seg = seg.groupby(SEGMENT)[USER_ID].nunique()
        by_seg = users.groupby([SEGMENT, TAG])[USER_ID].nunique().rename("popularity").reset_index()
        by_seg["popularity"] = by_seg["popularity"] / by_seg[SEGMENT].map(n_seg).fillna(1).clip(lower=1)
        n_all = max(known[USER_ID].nunique(), 1)
        overall = (known.groupby(TAG)[USER_ID].nunique() / n_all).rename("popularity").reset_index()
        overall[SEGMENT] = ALL_USERS
        return pd.concat([by_seg, overall], ignore_index=True)

    def _prior_candidates(
        self, known: pd.DataFrame, vocabulary: Vocabulary, seg: pd.DataFrame, popularity: pd.DataFrame
    ) -> pd.DataFrame:
        """Candidates without own evidence: siblings of known tags, popular tags of the segment."""
        overall = popularity[popularity[SEGMENT] == ALL_USERS].set_index(TAG)["popularity"].to_dict()
        parts = []
        if self.adjacent_per_tag and len(known):
            sib = {t: vocabulary.siblings(t) for t in known[TAG].unique()}
            ranked = {
                t: sorted(s, key=lambda x: (-overall.get(x, 0.0), x))[: self.adjacent_per_tag] for t, s in sib.items()
            }
            adj = known[[USER_ID, TAG]].assign(_sib=known[TAG].map(ranked)).explode("_sib").dropna(subset=["_sib"])
            parts.append(pd.DataFrame({USER_ID: adj[USER_ID], TAG: adj["_sib"], "candidate_reason": "graph_adjacent"}))
        if self.segment_top and len(seg):
            pop = popularity[popularity[SEGMENT] != ALL_USERS].sort_values(
                [SEGMENT, "popularity", TAG], ascending=[True, False, True]
            )
            # enough per segment that the user's own known tags can be skipped
            top = pop.groupby(SEGMENT).head(self.segment_top + 4)
            sp = seg.merge(top[[SEGMENT, TAG]], on=SEGMENT, how="inner")
            parts.append(pd.DataFrame({USER_ID: sp[USER_ID], TAG: sp[TAG], "candidate_reason": "segment_popular"}))
        if not parts:
            return pd.DataFrame(columns=[USER_ID, TAG, "candidate_reason"])
        out = pd.concat(parts, ignore_index=True)
        return out.assign(**{WEIGHT: 0.0, "evidence_count": 0, "last_seen": pd.NaT})

    def _rank_candidates(self, cands: pd.DataFrame, seg: pd.DataFrame, popularity: pd.DataFrame) -> pd.DataFrame:
        """At most ``max_candidates`` per user (``segment_top`` of them segment-popular): by
        reason, then by lift (own evidence) or popularity in the segment (priors)."""
        if cands.empty:
            return cands.drop(columns=["_lift"], errors="ignore")
        order = {r: i for i, r in enumerate(REASONS)}
        c = cands.assign(_reason=cands["candidate_reason"].map(order))
        # one row per (user, tag): the strongest reason, keeping any own evidence
        c = c.sort_values([USER_ID, TAG, "_reason", WEIGHT], ascending=[True, True, True, False])
        c = c.drop_duplicates([USER_ID, TAG])
        c = c.merge(seg, on=USER_ID, how="left").fillna({SEGMENT: ALL_USERS})
        c = c.merge(popularity, on=[SEGMENT, TAG], how="left")
        overall = popularity[popularity[SEGMENT] == ALL_USERS].set_index(TAG)["popularity"]
        c["popularity"] = c["popularity"].fillna(c[TAG].map(overall)).fillna(0.0)
        c["_score"] = c["_lift"].fillna(c["popularity"]) if "_lift" in c else c["popularity"]
        keys, asc = [USER_ID, "_reason", "_score", TAG], [True, True, False, True]
        c = c.sort_values(keys, ascending=asc)
        seg_rows = c["candidate_reason"] == "segment_popular"
        c = pd.concat([c[~seg_rows], c[seg_rows].groupby(USER_ID).head(self.segment_top)]).sort_values(
            keys, ascending=asc
        )
        c = c.groupby(USER_ID).head(self.max_candidates)
        return c.drop(columns=["_reason", "_score", "_lift", SEGMENT, "popularity"], errors="ignore")


def interest_recall(profiles: pd.DataFrame, truth: pd.DataFrame) -> dict[str, float]:
    """Share of each user's true interests (``truth``: user_id, tag[, status]) found in the
    profile, averaged over users with a profile: known-only and known + candidate, overall and
    per true-interest status; plus the mean profile sizes."""
    users = set(profiles[USER_ID])
    t = truth[truth[USER_ID].isin(users)]
    if t.empty:
        return {"users": 0.0}
    is_known = profiles["status"] == KNOWN
    known = set(zip(profiles.loc[is_known, USER_ID], profiles.loc[is_known, TAG], strict=True))
    anyp = set(zip(profiles[USER_ID], profiles[TAG], strict=True))
    t = t.assign(
        _known=[(u, g) in known for u, g in zip(t[USER_ID], t[TAG], strict=True)],
        _any=[(u, g) in anyp for u, g in zip(t[USER_ID], t[TAG], strict=True)],
    )
    out: dict[str, float] = {
        "users": float(len(users)),
        "recall_known": float(t.groupby(USER_ID)["_known"].mean().mean()),
        "recall_known_or_candidate": float(t.groupby(USER_ID)["_any"].mean().mean()),
        "known_per_user": float((profiles["status"] == KNOWN).sum() / len(users)),
        "candidates_per_user": float((profiles["status"] == CANDIDATE).sum() / len(users)),
    }
    if "status" in t:
        for status, g in t.groupby("status"):
            out[f"recall_known[{status}]"] = float(g["_known"].mean())
            out[f"recall_known_or_candidate[{status}]"] = float(g["_any"].mean())
    return out
