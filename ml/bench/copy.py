"""``python -m ml bench copy --size default --out DIR``: how much marketing copy passes the
grounding gate, and what it costs.

On the generated shop's catalogue: trains the small catalogue model (``--steps``; or loads
``--model``, a local folder with any causal LM), then for ``--products`` products drawn at random
writes ``--attempts`` candidates each, as a campaign offering ``--discount`` percent would, in
two arms: ``free`` (plain sampling) and ``constrained`` (what ``generate_copy`` does: the words
the gate would refuse for the product are kept out of decoding). Every candidate is gated
(``ml.marketing.copywriting.gate``). Reports per arm the pass rate, the share of products for
which no candidate passed (the template would be published), failures per rule, and seconds per
product; plus the training time. ``DIR/copy.json`` and ``DIR/copy.png``.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from ml.bench import SHOP_SIZES, positive_int
from ml.bench.measure import measure, table, write_json

NAME = "copy"
HELP = "marketing copy: grounding-gate pass rate of the catalogue model, free vs constrained decoding"
log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", choices=SHOP_SIZES, default="default", help="shop size")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--steps", type=positive_int, default=200, help="training steps of the catalogue model")
    p.add_argument("--model", type=Path, default=None, help="a local folder with a causal LM instead of training")
    p.add_argument("--products", type=positive_int, default=60, help="products written for")
    p.add_argument("--attempts", type=positive_int, default=4, help="candidates per product")
    p.add_argument("--discount", type=float, default=15.0, help="the campaign's discount in percent")
    p.add_argument("--out", type=Path, required=True)


def run(args: argparse.Namespace) -> int:
    from ml.marketing.campaigns import Campaign
    from ml.marketing.copywriting import lm
    from ml.marketing.copywriting.gate import Catalogue, Offer
    from ml.shop.generate import generate

    with measure("copy") as stage:
        items = generate(size=args.size, seed=args.seed)["items"]
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as scratch:
            folder = args.model or lm.catalogue_model(items, Path(scratch), lm.LMSettings(steps=args.steps))
            writer = lm.load(folder)
            train_s = time.perf_counter() - t0
            facts = lm.product_facts(items)
            catalogue = Catalogue.from_facts(facts)
            picked = np.random.default_rng(args.seed).choice(len(facts), min(args.products, len(facts)), replace=False)
            campaign = Campaign(
                name="bench_sale", start=datetime(2026, 1, 1), end=datetime(2026, 1, 8), boost_items=["-"]
            )
            rows = facts.iloc[np.sort(picked)].itertuples(index=False)
            offers = [Offer(p, args.discount, campaign.title) for p in rows]
            arms = {
                arm: _arm(writer, campaign, offers, catalogue, args.attempts, arm) for arm in ("free", "constrained")
            }
    payload = {
        "size": args.size,
        "seed": args.seed,
        "model": str(args.model) if args.model else f"catalogue model, {args.steps} steps",
        "catalogue_products": len(facts),
        "products": len(offers),
        "attempts": args.attempts,
        "discount_percent": args.discount,
        "train_seconds": round(train_s, 1),
        "arms": arms,
        "wall_seconds": round(stage.seconds, 1),
        "peak_rss_mb": round(stage.peak_rss_mb, 1),
    }
    write_json(args.out, "copy.json", payload)
    png = _plot(payload, Path(args.out) / "copy.png")
    rows = [
        {
            "decoding": name,
            "pass rate": a["pass_rate"],
            "template share": a["template_share"],
            "s per product": a["seconds_per_product"],
            "failures": ", ".join(f"{k} {v}" for k, v in a["reasons"].items()),
        }
        for name, a in arms.items()
    ]
    print(f"{len(offers)} products x {args.attempts} candidates of the {args.size} shop ({payload['model']})")
    print(table(rows))
    print(f"model ready in {train_s:.1f} s; wrote {Path(args.out) / 'copy.json'} and {png}")
    return 0


def _arm(writer: Any, campaign: Any, offers: list[Any], catalogue: Any, attempts: int, arm: str) -> dict[str, Any]:
    """Write and gate ``attempts`` candidates per offer, with or without the gate's words kept out."""
    from ml.marketing.copywriting.gate import check, off_limits, rule
    from ml.marketing.copywriting.lm import prompt, write
    from ml.marketing.copywriting.variants import headline

    passed = total = unserved = 0
    reasons: Counter[str] = Counter()
    t0 = time.perf_counter()
    for n, offer in enumerate(offers):
        avoid = off_limits(offer, catalogue) if arm == "constrained" else None
        bodies = write(writer, prompt(offer.product), attempts, seed=n, avoid=avoid)
        verdicts = [check(f"{headline(campaign, offer)} {b}", offer, catalogue, []) if b else ["empty"] for b in bodies]
        passed += sum(not v for v in verdicts)
        total += len(verdicts)
        unserved += all(verdicts)
        for v in verdicts:
            reasons.update({rule(r) for r in v})
    seconds = time.perf_counter() - t0
    return {
        "candidates": total,
        "passed": passed,
        "pass_rate": round(passed / total, 4),
        "template_share": round(unserved / len(offers), 4),
        "reasons": dict(sorted(reasons.items())),
        "seconds_per_product": round(seconds / len(offers), 3),
    }


def _plot(payload: dict[str, Any], path: Path) -> Path:
    from ml.bench.plots import grouped_bars

    groups = {
        name: {"pass rate": a["pass_rate"], "template share": a["template_share"]}
        for name, a in payload["arms"].items()
    }
    return grouped_bars(path, f"Marketing copy through the grounding gate, {payload['size']} shop", groups, "share")
