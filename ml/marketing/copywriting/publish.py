"""``generate_copy``: per published audience and live campaign, copy variants into the versioned
``serving.copy_<audience>`` table, and every candidate with the gate's verdict into ``ml.copy_candidates``.

A campaign is live when it is active at the newest event or starts within ``lead_days`` of it
(copy is written ahead of a campaign). An audience gets copy when its serving table
(``publish_audiences``) has members. The copy table and the audience's candidate rows of the
run switch in one transaction (``publish_table``'s ``in_transaction``); a rerun of the run
replaces both, and with an unchanged catalogue and model writes the same rows (seeded sampling).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pandas as pd

from ml.marketing.campaigns import Campaign
from ml.marketing.copywriting import lm
from ml.marketing.copywriting.gate import Catalogue, Offer, rule
from ml.marketing.copywriting.lm import Writer
from ml.marketing.copywriting.variants import CANDIDATE_COLUMNS, featured, write_copy
from ml.warehouse import Warehouse

log = logging.getLogger(__name__)

CANDIDATES = "ml.copy_candidates"
CANDIDATES_DDL = """run_id varchar, audience varchar, campaign varchar, variant integer, attempt integer,
    item_id varchar, source varchar, text varchar, passed boolean, published boolean, reasons varchar,
    model varchar, written_at timestamp"""
# each (audience, campaign)'s candidates of its latest run (what the page and the demo show)
LATEST_CANDIDATES_SQL = (
    f"select * from {CANDIDATES} c where written_at = (select max(written_at) from {CANDIDATES} l "
    "where l.audience = c.audience and l.campaign = c.campaign) order by campaign, audience, variant, attempt"
)
ITEMS_SQL = (
    "select item_id, title, description, brand, price, category_path, attributes "
    "from staging.stg_shop__items order by item_id"
)


def live_campaigns(campaigns: dict[str, Campaign], as_of: pd.Timestamp, lead_days: float) -> list[Campaign]:
    """Campaigns active at ``as_of`` or starting within ``lead_days`` after it."""
    at = as_of.to_pydatetime()
    soon = at + timedelta(days=lead_days)
    return [c for c in campaigns.values() if c.active(at) or at < c.start <= soon]


def item_tags(wh: Warehouse) -> pd.DataFrame:
    """item_id, tag, n_clicks: each item's department, category, style and tier tag."""
    from ml.marketing.serving import ITEM_TAG_COLUMNS, long_item_tags

    feats = wh.query(f"select item_id, n_clicks, {', '.join(ITEM_TAG_COLUMNS)} from marts.item_features")
    return long_item_tags(feats, ("n_clicks",)).reset_index(drop=True)


def audience_sizes(wh: Warehouse, names: list[str]) -> dict[str, int]:
    """Members of each audience's current serving table (0 when never published)."""
    sizes = {}
    with wh.connect(read_only=True) as con:
        for name in names:
            view = f"audience_{name}_current"
            present = wh.table_exists(con, "serving", view)
            sizes[name] = (
                int(wh.query(f"select count(*) as n from serving.{view}", None, con)["n"].iloc[0]) if present else 0
            )
    return sizes


def ensure_candidates_table(wh: Warehouse) -> None:
    with wh.connect() as con:
        wh.ensure_schemas(con)
        wh.execute(con, f"create table if not exists {CANDIDATES} ({CANDIDATES_DDL})")
        con.commit()


def replace_candidates(wh: Warehouse, run_id: str, audience: str, rows: pd.DataFrame) -> Any:
    """The ``in_transaction`` callback that replaces the run's candidate rows of ``audience``."""

    def write(con: Any) -> None:
        wh.execute(con, f"delete from {CANDIDATES} where run_id = ? and audience = ?", [run_id, audience])
        wh.append_df(
            con, CANDIDATES, rows.assign(run_id=run_id, written_at=pd.Timestamp.now(tz="UTC").tz_localize(None))
        )

    return write


def write_audience_copy(
    writer: Writer,
    audience: str,
    audience_tags: list[str],
    campaigns: list[Campaign],
    facts: pd.DataFrame,
    catalogue: Catalogue,
    tags: pd.DataFrame,
    banned: list[str],
    attempts: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(published variants, candidates) of every campaign for one audience (``catalogue``: the
    gate's view of ``facts``)."""
    copies, candidates = [], []
    for campaign in campaigns:
        products = featured(facts, tags, campaign, audience_tags, campaign.copy_variants)
        if products.empty:
            log.info("copy: campaign %s boosts no catalogue product; no copy for %s", campaign.name, audience)
            continue
        offers = [Offer(p, campaign.discount_percent, campaign.title) for p in products.itertuples(index=False)]
        written = write_copy(writer, campaign, audience, offers, catalogue, banned, attempts)
        copies.append(written.copy)
        candidates.append(written.candidates)
    if not copies:
        return pd.DataFrame(), pd.DataFrame(columns=CANDIDATE_COLUMNS)
    return pd.concat(copies, ignore_index=True), pd.concat(candidates, ignore_index=True)


def gate_summary(candidates: pd.DataFrame) -> dict[str, Any]:
    """Pass rate of the model's candidates, the template fallbacks, and failures per rule."""
    model = candidates[candidates["source"] == "model"]
    reasons: Counter[str] = Counter()
    for text in model.loc[~model["passed"].astype(bool), "reasons"]:
        reasons.update({rule(r) for r in json.loads(text)})
    fallback = candidates[(candidates["source"] == "template") & candidates["published"].astype(bool)]
    return {
        "candidates": len(model),
        "passed": int(model["passed"].sum()),
        "pass_rate": round(float(model["passed"].mean()), 4) if len(model) else None,
        "template_fallbacks": len(fallback),
        "reasons": dict(sorted(reasons.items())),
    }


@dataclass(frozen=True)
class CopySettings:
    """How ``publish_copy`` writes: ``model`` (a local folder; default the ``copy_model`` setting,
    else the catalogue model trained with ``lm``, ``LMSettings`` fields), the banned phrases,
    candidates per variant, the serving versions kept and the words the gate accepts beyond the
    catalogue's and the dictionary's."""

    model: str | None = None
    lm: dict[str, Any] = field(default_factory=dict)
    banned: list[str] = field(default_factory=list)
    attempts: int = 4
    keep_versions: int = 3
    words: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) or self.attempts < 1:
            raise ValueError(f"copy attempts must be a whole number >= 1, got {self.attempts!r}")
        if not isinstance(self.banned, list) or not all(isinstance(b, str) for b in self.banned):
            raise ValueError(f"banned phrases must be a list of strings, got {self.banned!r}")
        if not isinstance(self.words, list) or not all(isinstance(w, str) for w in self.words):
            raise ValueError(f"allowed words must be a list of strings, got {self.words!r}")
        known = set(lm.LMSettings.__dataclass_fields__)
        if set(self.lm) - known:
            raise ValueError(f"unknown copy_lm settings {sorted(set(self.lm) - known)}; known: {sorted(known)}")
        lm.LMSettings(**self.lm)  # refuses bad values (steps < 1, ...) before anything is written

    def writer(self, items: pd.DataFrame) -> Writer:
        from ml.config import artifacts_dir
        from ml.settings import settings

        folder = self.model or settings().copy_model
        return lm.load(folder or lm.catalogue_model(items, artifacts_dir() / "copy_lm", lm.LMSettings(**self.lm)))


def publish_copy(
    wh: Warehouse, run_id: str, audiences: dict[str, list[str]], campaigns: list[Campaign], how: CopySettings
) -> dict[str, Any]:
    """Write and publish the copy of every published audience (name -> its spec's tags) for the
    live ``campaigns`` (module docstring); returns what was published and the gate's summary,
    overall and per audience, and what was skipped and why."""
    from ml.publish import publish_table

    sizes = audience_sizes(wh, list(audiences))
    report: dict[str, Any] = {"campaigns": [c.name for c in campaigns], "audiences": {}}
    report["skipped"] = {n: "audience not published, or empty" for n, size in sizes.items() if size == 0}
    if not campaigns:
        report["skipped"]["*"] = "no campaign is active or starts within the lead days"
    ready = [n for n in audiences if sizes[n] > 0] if campaigns else []
    if not ready:
        return report
    items = wh.query(ITEMS_SQL)
    writer = how.writer(items)
    facts, tags = lm.product_facts(items), item_tags(wh)
    catalogue = Catalogue.from_facts(facts, how.words)  # once: every audience's copy is gated against it
    ensure_candidates_table(wh)
    every = []
    for name in ready:
        copy, candidates = write_audience_copy(
            writer, name, audiences[name], campaigns, facts, catalogue, tags, how.banned, how.attempts
        )
        if copy.empty:
            report["skipped"][name] = "no live campaign boosts a catalogue product"
            continue
        pub = publish_table(
            copy.assign(run_id=run_id),
            f"copy_{name}",
            f"{run_id}|copy|{name}",
            wh,
            keep=how.keep_versions,
            meta={
                "model": writer.name,
                "banned_phrases": how.banned,
                "attempts": how.attempts,
                "allowed_words": how.words,
            },
            in_transaction=replace_candidates(wh, run_id, name, candidates),
        )
        report["audiences"][name] = {"table": pub.table, "view": pub.view, "variants": len(copy)}
        report["audiences"][name] |= gate_summary(candidates)
        every.append(candidates)
    return report | {"model": writer.name, **(gate_summary(pd.concat(every)) if every else {})}
