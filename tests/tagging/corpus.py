"""A tiny labelled corpus built in code: (category, style, tier) tags with small word pools."""

from __future__ import annotations

import numpy as np

NOUNS = {
    "cat:home_lamps": ["lamp", "floor lamp", "desk light"],
    "cat:kids_puzzles": ["puzzle", "jigsaw", "brain teaser"],
    "cat:sports_tents": ["tent", "dome tent", "shelter"],
}
STYLES = {
    "style:vintage": ["retro", "heritage", "throwback"],
    "style:eco": ["recycled", "organic", "sustainable"],
}
TIERS = {"tier:budget": ["Basico", "Thrifto"], "tier:premium": ["Maison Vale", "Kestrel"]}


def make_corpus(n: int, seed: int = 0) -> tuple[list[str], list[list[str]]]:
    """n item texts and their (category, style, tier) tags, with wording drawn from small pools."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        cat = list(NOUNS)[int(rng.integers(len(NOUNS)))]
        style = list(STYLES)[int(rng.integers(len(STYLES)))]
        tier = list(TIERS)[int(rng.integers(len(TIERS)))]
        noun = NOUNS[cat][int(rng.integers(3))]
        adj = STYLES[style][int(rng.integers(3))]
        brand = TIERS[tier][int(rng.integers(2))]
        texts.append(f"{brand} {adj} {noun}. A {adj} {noun} for the home.")
        labels.append([cat, style, tier])
    return texts, labels
