"""Declarative audiences built from user interest profiles.

An audience spec (a YAML file in ``ml/marketing/audiences/`` or a dict from DAG Params) says
which interest tags qualify a user and with what minimum weight, whether candidate tags count,
how recent the evidence must be, which segments and spend band, and whom to exclude (recent
purchasers, users whose latest review reads negative — ``exclude_negative_reviewers``, from the
review model's ``ml.review_sentiment`` —, users who opted out of marketing — always excluded, whatever the spec says, and so
are profiles without a user record, whose consent is unknown).

Frames (column names below are the warehouse contract):
- profiles: user_id, tag, weight, evidence_count, last_seen, status ('known'|'candidate')
- users: user_id, marketing_opt_out (bool), segment (int, optional), monetary (float, optional),
  latest_review (the label of the user's latest scored review: negative, neutral, positive;
  optional, null without one)
- purchases: user_id, event_at (recent purchase events)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SPEC_DIR = Path(__file__).parent / "audiences"


@dataclass
class TagRule:
    tag: str
    min_weight: float = 0.0


@dataclass
class Lookalike:
    max_size: int = 0  # 0 = no lookalike extension
    min_similarity: float = 0.5


@dataclass
class AudienceSpec:
    name: str
    tags: list[TagRule]
    description: str = ""
    match: str = "any"  # any | all
    include_candidates: bool = False
    recency_days: float | None = None
    segments: list[int] | None = None
    spend_band: tuple[float | None, float | None] = (None, None)
    exclude_purchased_within_days: float | None = None
    exclude_users: list[str] = field(default_factory=list)
    exclude_negative_reviewers: bool = False
    lookalike: Lookalike = field(default_factory=Lookalike)

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum() or not self.name[0].isalpha():
            raise ValueError(f"audience name {self.name!r} must be letters, digits and _ (starting with a letter)")
        if not self.tags:
            raise ValueError(f"audience {self.name!r}: at least one tag rule is required")
        if self.match not in ("any", "all"):
            raise ValueError(f"audience {self.name!r}: match must be 'any' or 'all', not {self.match!r}")
        if self.lookalike.max_size < 0 or not 0 <= self.lookalike.min_similarity <= 1:
            raise ValueError(f"audience {self.name!r}: lookalike max_size >= 0 and 0 <= min_similarity <= 1")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AudienceSpec:
        d = dict(d)
        tags = [TagRule(**t) if isinstance(t, dict) else TagRule(str(t)) for t in d.pop("tags", [])]
        look = Lookalike(**d.pop("lookalike", {}) or {})
        band = d.pop("spend_band", None) or (None, None)
        return cls(tags=tags, lookalike=look, spend_band=(band[0], band[1]), **d)


def load_specs(folder: Path = SPEC_DIR) -> dict[str, AudienceSpec]:
    """Every ``*.yml`` audience in ``folder``, keyed by name (file problems name the file)."""
    import yaml

    specs: dict[str, AudienceSpec] = {}
    for path in sorted(folder.glob("*.yml")):
        try:
            spec = AudienceSpec.from_dict(yaml.safe_load(path.read_text()))
        except (TypeError, ValueError, yaml.YAMLError) as exc:
            raise ValueError(f"{path}: invalid audience spec: {exc}") from exc
        specs[spec.name] = spec
    return specs


@dataclass
class AudienceResult:
    members: pd.DataFrame  # user_id, score, matched_tags, reason, source ('rule'|'lookalike')
    excluded: dict[str, int]
    lookalike_threshold: float | None
    lookalike_added: int


def build_audience(
    spec: AudienceSpec,
    profiles: pd.DataFrame,
    users: pd.DataFrame,
    purchases: pd.DataFrame | None = None,
    as_of: pd.Timestamp | None = None,
) -> AudienceResult:
    """Materialise one audience: rule members, exclusions, then lookalikes (capped)."""
    as_of = as_of or pd.Timestamp.now(tz=None)
    p = profiles.copy()
    if not spec.include_candidates:
        p = p[p["status"] == "known"]
    if spec.recency_days is not None and "last_seen" in p:
        p = p[pd.to_datetime(p["last_seen"]) >= as_of - pd.Timedelta(days=spec.recency_days)]
    rules = pd.DataFrame({"tag": [r.tag for r in spec.tags], "min_weight": [r.min_weight for r in spec.tags]})
    hits = p.merge(rules, on="tag")
    hits = hits[hits["weight"] >= hits["min_weight"]]
    agg = hits.groupby("user_id").agg(
        score=("weight", "sum"), n_tags=("tag", "nunique"), matched=("tag", lambda s: sorted(set(s)))
    )
    if spec.match == "all":
        agg = agg[agg["n_tags"] == len(rules)]
    members = agg.reset_index()
    u = users.set_index("user_id")
    excluded: dict[str, int] = {}

    def drop(mask: pd.Series, reason: str) -> None:
        nonlocal members
        n = int(mask.sum())
        if n:
            excluded[reason] = excluded.get(reason, 0) + n
        members = members[~mask.to_numpy()]

    if "marketing_opt_out" not in u:
        raise ValueError("users need a marketing_opt_out column: consent must be known to build an audience")
    consent = u["marketing_opt_out"]
    if consent.isna().any():
        raise ValueError(f"marketing_opt_out is null for {int(consent.isna().sum())} users: consent must be known")
    opted = set(u.index[consent.astype(bool)])
    drop(members["user_id"].isin(opted), "opted_out")
    # a profile without a user record has no known consent: never contact it
    drop(~members["user_id"].isin(u.index), "no_consent_record")
    if spec.segments is not None and "segment" in u:
        seg = members["user_id"].map(u["segment"])
        drop(~seg.isin(spec.segments), "segment")
    lo, hi = spec.spend_band
    if (lo is not None or hi is not None) and "monetary" in u:
        spend = members["user_id"].map(u["monetary"]).fillna(0.0)
        drop(~spend.between(lo if lo is not None else -np.inf, hi if hi is not None else np.inf), "spend_band")
    if spec.exclude_purchased_within_days is not None and purchases is not None and len(purchases):
        since = as_of - pd.Timedelta(days=spec.exclude_purchased_within_days)
        recent = set(purchases.loc[pd.to_datetime(purchases["event_at"]) >= since, "user_id"])
        drop(members["user_id"].isin(recent), "recent_purchaser")
    if spec.exclude_users:
        drop(members["user_id"].isin(spec.exclude_users), "excluded_list")
    negative: set[str] = set()
    if spec.exclude_negative_reviewers:
        if "latest_review" not in u:
            raise ValueError(
                f"audience {spec.name!r} excludes negative reviewers, but no review has been scored "
                "(ml.review_sentiment: build_features' score_reviews task)"
            )
        negative = set(u.index[u["latest_review"].eq("negative").fillna(False).astype(bool)])
        drop(members["user_id"].isin(negative), "negative_latest_review")
    members = members.assign(
        matched_tags=members["matched"].map(lambda t: ",".join(t)),
        reason=members["matched"].map(lambda t: "interested in " + ", ".join(t)),
        source="rule",
    )[["user_id", "score", "matched_tags", "reason", "source"]]

    threshold, added = None, 0
    if spec.lookalike.max_size > 0 and len(members):
        unknown = set(profiles["user_id"]) - set(u.index)  # no consent record: never a lookalike either
        blocked = set(members["user_id"]) | opted | set(spec.exclude_users) | unknown | negative
        look = lookalikes(profiles, members["user_id"], spec.lookalike, blocked)
        threshold = spec.lookalike.min_similarity
        added = len(look)
        members = pd.concat([members, look], ignore_index=True)
    members = members.sort_values(["score", "user_id"], ascending=[False, True]).reset_index(drop=True)
    return AudienceResult(members, excluded, threshold, added)


def lookalikes(profiles: pd.DataFrame, seeds: pd.Series, cfg: Lookalike, blocked: set[str]) -> pd.DataFrame:
    """Users most similar (cosine over tag-weight vectors) to the seed audience's centroid,
    at least ``min_similarity``, at most ``max_size`` of them, never a blocked user."""
    import scipy.sparse as sp

    users = np.sort(profiles["user_id"].unique())
    tags = np.sort(profiles["tag"].unique())
    ui = {u: i for i, u in enumerate(users)}
    ti = {t: i for i, t in enumerate(tags)}
    M = sp.csr_matrix(
        (profiles["weight"].to_numpy(float), (profiles["user_id"].map(ui), profiles["tag"].map(ti))),
        shape=(len(users), len(tags)),
    )
    norms = np.sqrt(np.asarray(M.multiply(M).sum(axis=1)).ravel())
    seed_rows = [ui[s] for s in seeds if s in ui]
    centroid = np.asarray(M[seed_rows].mean(axis=0)).ravel()
    cn = np.linalg.norm(centroid)
    sim = (M @ centroid) / np.maximum(norms * cn, 1e-12)
    cand = pd.DataFrame({"user_id": users, "similarity": sim})
    cand = cand[~cand["user_id"].isin(blocked) & (cand["similarity"] >= cfg.min_similarity)]
    cand = cand.sort_values(["similarity", "user_id"], ascending=[False, True]).head(cfg.max_size)
    return pd.DataFrame(
        {
            "user_id": cand["user_id"],
            "score": cand["similarity"],
            "matched_tags": "",
            "reason": cand["similarity"].map(lambda s: f"lookalike (similarity {s:.2f})"),
            "source": "lookalike",
        }
    )


def overlap_report(audiences: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Sizes and pairwise overlap (shared users and Jaccard) between audiences."""
    rows = []
    names = sorted(audiences)
    sets = {n: set(audiences[n]["user_id"]) for n in names}
    for a in names:
        for b in names:
            inter = len(sets[a] & sets[b])
            union = len(sets[a] | sets[b]) or 1
            rows.append({"audience": a, "other": b, "size": len(sets[a]), "shared": inter, "jaccard": inter / union})
    return pd.DataFrame(rows)
