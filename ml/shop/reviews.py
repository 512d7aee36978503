"""Review text of the synthetic shop: sentences about aspects of a purchase whose tone follows
the rating, and the rating follows the item's hidden quality and the buyer's style match.

A review is one to four sentences, each about one aspect (quality, fit, delivery, value, looks)
and either praising or criticising it. The share of praising sentences rises with the rating
(1 star: 8 %, 3 stars: 50 %, 5 stars: 92 %), so a 3-star review mixes both and a 5-star review
may still complain about delivery. Phrasings include negations ("not bad at all", "not worth
the money") and a few openers, so counting words is not enough to read the tone; each phrasing
is spread over every rating, so the text never gives the rating away exactly.
"""

from __future__ import annotations

import numpy as np

# per aspect: (praising phrasings, criticising phrasings)
ASPECTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "quality": (
        ("Great quality", "Feels solid and well made", "The stitching is excellent", "Not cheap-feeling at all"),
        ("Poor quality", "Fell apart after a week", "The seams came loose", "Not built to last"),
    ),
    "fit": (
        ("Fits perfectly", "True to size", "Comfortable from day one", "No complaints about the fit"),
        ("Runs small", "Did not fit as expected", "Uncomfortable after an hour", "Not true to size"),
    ),
    "delivery": (
        ("Arrived early", "Well packaged", "Shipping was quick", "Delivery was no problem"),
        ("Arrived late", "The box was damaged", "Shipping took forever", "Not delivered on the promised day"),
    ),
    "value": (
        ("Worth every penny", "Good value for the price", "A bargain", "Not overpriced"),
        ("Overpriced", "Not worth the money", "Too expensive for what it is", "Would not pay this again"),
    ),
    "looks": (
        ("Looks exactly as pictured", "The colour is lovely", "Even nicer in person", "Not a single flaw"),
        ("Not as pictured", "The colour is off", "Looks cheaper in person", "Faded after one wash"),
    ),
}
OPENERS = (
    ("Love it.", "Would buy again.", "Really happy with this.", "Recommended."),
    ("Disappointing.", "Returned it.", "Would not recommend.", "Regret buying this."),
)
# probability that a sentence praises, by rating 1..5
PRAISE_SHARE = np.array([0.08, 0.2, 0.5, 0.8, 0.92])
ASPECT_NAMES = tuple(ASPECTS)


def review_texts(rng: np.random.Generator, rating: np.ndarray) -> np.ndarray:
    """One review text per rating (1..5), as an object array."""
    out = np.empty(len(rating), dtype=object)
    for n, r in enumerate(np.asarray(rating, dtype=np.int64)):
        praise = PRAISE_SHARE[int(np.clip(r, 1, 5)) - 1]
        n_sent = 1 + min(int(rng.poisson(1.2)), 3)
        aspects = rng.choice(len(ASPECT_NAMES), size=n_sent, replace=False)
        sentences = []
        if rng.random() < 0.3:
            good = rng.random() < praise
            sentences.append(OPENERS[0 if good else 1][int(rng.integers(4))])
        for a in aspects:
            good = rng.random() < praise
            phrasings = ASPECTS[ASPECT_NAMES[a]][0 if good else 1]
            sentences.append(phrasings[int(rng.integers(len(phrasings)))] + ".")
        out[n] = " ".join(sentences)
    return out


def review_ratings(rng: np.random.Generator, style_match: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Stars per review: 5 for an item in the buyer's style, 3 otherwise, minus 0 or 1 at
    random, moved by the item's hidden quality (:func:`quality_shift`), within 1..5. Also makes
    the two draws the earlier fixed phrases used, so every later draw of ``rng`` is unchanged."""
    n = len(style_match)
    rating = np.clip(np.where(style_match, 5, 3) + rng.integers(-1, 1, n) + quality_shift(quality), 1, 5)
    rng.integers(0, 5, n)
    rng.integers(0, 5, n)
    return rating


def quality_shift(quality: np.ndarray) -> np.ndarray:
    """Stars an item's hidden quality in [0, 1] adds to a rating: -2 below 0.2, -1 below 0.4,
    +1 from 0.85, else 0."""
    q = np.asarray(quality, dtype=np.float64)
    return np.select([q < 0.2, q < 0.4, q >= 0.85], [-2, -1, 1], 0).astype(np.int64)
