"""Copy variants for one audience and one campaign.

The campaign's copy has ``copy_variants`` slots, the arms its treatment users are split across
(``ml.marketing.campaigns.copy_variant``). Slot ``v`` features product ``v`` of
:func:`featured` (cycling when there are fewer), and reads

    <headline> <body>

where the headline states the offer from the catalogue and the campaign spec only (title,
brand, price, and the campaign price and discount when there is one) and the body is what the
language model writes for the product's prompt. The model writes ``attempts`` candidates per
slot, all gated (``gate.check``); the first that passes is published, every failing one is
dropped with its reasons recorded. When none passes, a template body stands in
(``source`` = ``template``), itself gated.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import pandas as pd

from ml.marketing.campaigns import TREATMENT, Campaign
from ml.marketing.copywriting.gate import Catalogue, Offer, check, off_limits
from ml.marketing.copywriting.lm import Writer, prompt, write

COPY_COLUMNS = [
    "audience",
    "campaign",
    "variant",
    "campaign_arm",
    "item_id",
    "text",
    "source",
    "price",
    "campaign_price",
    "discount_percent",
    "model",
]
CANDIDATE_COLUMNS = [
    "audience",
    "campaign",
    "variant",
    "attempt",
    "item_id",
    "source",
    "text",
    "passed",
    "published",
    "reasons",
    "model",
]
EMPTY = "empty: the model wrote no copy"


def featured(
    facts: pd.DataFrame, item_tags: pd.DataFrame, campaign: Campaign, audience_tags: list[str], n: int
) -> pd.DataFrame:
    """Up to ``n`` products the campaign boosts (its tags or items), those carrying more of the
    audience's tags first, then the most clicked (``item_tags``: item_id, tag, n_clicks)."""
    boosted = set(item_tags.loc[item_tags["tag"].isin(campaign.boost_tags), "item_id"]) | set(campaign.boost_items)
    tags = item_tags[item_tags["item_id"].isin(boosted)]
    matches = tags[tags["tag"].isin(audience_tags)].groupby("item_id").size().rename("matches")
    clicks = tags.groupby("item_id")["n_clicks"].max().rename("clicks")
    ranked = facts[facts["item_id"].isin(boosted)].join(matches, on="item_id").join(clicks, on="item_id")
    ranked = ranked.fillna({"matches": 0, "clicks": 0})
    ranked = ranked.sort_values(["matches", "clicks", "item_id"], ascending=[False, False, True])
    return ranked.drop(columns=["matches", "clicks"]).head(n).reset_index(drop=True)


def headline(campaign: Campaign, offer: Offer) -> str:
    """The offer in facts: campaign, title, brand, price (and campaign price and discount)."""
    p = offer.product
    by = f" by {p.brand}" if p.brand and p.brand.lower() not in p.title.lower() else ""
    if offer.sale_price is None:
        return f"{campaign.title}: {p.title}{by}, {p.price:.2f}."
    return (
        f"{campaign.title}: {p.title}{by}, now {offer.sale_price:.2f} instead of {p.price:.2f} "
        f"({offer.discount_percent:g}% off)."
    )


def template(campaign: Campaign, offer: Offer) -> str:
    """The fallback variant: the headline and a body of catalogue facts only."""
    category = offer.product.category.lower()
    return f"{headline(campaign, offer)} Picked for you from our {category}." if category else headline(campaign, offer)


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:4], "little")


@dataclass
class Written:
    """What :func:`write_copy` wrote: the published variants and every candidate with its verdict."""

    copy: pd.DataFrame
    candidates: pd.DataFrame


def write_copy(
    writer: Writer,
    campaign: Campaign,
    audience: str,
    offers: list[Offer],
    catalogue: Catalogue,
    banned: list[str],
    attempts: int,
    max_new_tokens: int = 40,
) -> Written:
    """The campaign's variants for ``audience`` (module docstring); ``offers``: the featured
    products with the campaign's discount, at least one."""
    if not offers:
        raise ValueError(f"campaign {campaign.name!r}: no product to feature in copy for {audience!r}")
    copy, candidates = [], []
    for v in range(campaign.copy_variants):
        offer = offers[v % len(offers)]
        p = offer.product
        lead = headline(campaign, offer)
        seed = _seed(campaign.name, audience, v, p.item_id)
        bodies = write(writer, prompt(p), attempts, seed, max_new_tokens, off_limits(offer, catalogue))
        tried = [
            ("model", f"{lead} {b}", check(f"{lead} {b}", offer, catalogue, banned) if b else [EMPTY]) for b in bodies
        ]
        chosen = next((i for i, (_, _, reasons) in enumerate(tried) if not reasons), None)
        if chosen is None:
            text = template(campaign, offer)
            tried.append(("template", text, check(text, offer, catalogue, banned)))
            chosen = None if tried[-1][2] else len(tried) - 1
        for attempt, (source, text, reasons) in enumerate(tried):
            row = [audience, campaign.name, v, attempt, p.item_id, source, text, not reasons, attempt == chosen]
            candidates.append([*row, json.dumps(reasons)])
        if chosen is not None:
            source, text, _ = tried[chosen]
            row = [audience, campaign.name, v, TREATMENT, p.item_id, text, source, p.price, offer.sale_price]
            copy.append([*row, offer.discount_percent])
    model = writer.name
    return Written(
        pd.DataFrame([[*r, model] for r in copy], columns=COPY_COLUMNS),
        pd.DataFrame([[*r, model] for r in candidates], columns=CANDIDATE_COLUMNS),
    )
