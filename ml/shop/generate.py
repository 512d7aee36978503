"""Synthetic shop generator: a landing batch shaped exactly like a real shop export.

Users carry latent interest mixtures over leaf categories and styles. Some interests are
*dormant* (never visible in the history, but the user clicks them when shown), some *emerge*
half-way through the period (drift). Sessions follow the interests: searches, views, carts,
purchases, reviews, plus impressions and clicks on slates from the shop's previous (uniform
random) recommender. Ground truth goes to ``_ground_truth/`` for evaluation only.

Everything is vectorised with NumPy so the ``large`` size (>= 10M events) stays practical.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from ml.progress import Progress
from ml.shop import taxonomy as tx
from ml.shop.reviews import review_ratings, review_texts


@dataclass(frozen=True)
class ShopSize:
    users: int
    items: int
    sessions_per_user: float
    days: int


SIZES: dict[str, ShopSize] = {
    "tiny": ShopSize(users=150, items=120, sessions_per_user=6.0, days=60),
    "small": ShopSize(users=1_000, items=500, sessions_per_user=7.0, days=90),
    "default": ShopSize(users=5_000, items=2_000, sessions_per_user=7.5, days=120),
    "large": ShopSize(users=120_000, items=24_000, sessions_per_user=11.0, days=180),
}

DEFAULT_END = datetime(2026, 10, 31, tzinfo=UTC)
NEW_ITEM_SHARE = 0.03  # items released after the last event: no interactions yet
OPT_OUT_SHARE = 0.08  # users who opted out of marketing (never in an audience)
POSITION_BIAS = np.array([1.0, 0.75, 0.55, 0.42, 0.33])
COLORS = ["black", "white", "navy", "olive", "red", "beige", "grey", "blue", "green", "pink"]
MATERIALS = ["cotton", "leather", "wool", "steel", "wood", "ceramic", "nylon", "linen", "glass"]
USE_CASES = [
    "for the weekend",
    "for the office",
    "for travel",
    "as a gift",
    "for everyday use",
    "for special occasions",
    "for the gym",
    "for the holidays",
]

# ---- item wording ------------------------------------------------------------------------
# Shops describe the same product in many ways. Each pool lists the common wording first;
# ``_zipf`` draws later (rarer) entries less often, so a long tail of synonyms appears only a
# handful of times in a catalogue, as in real merchant-written text.
LEAF_NOUNS: dict[str, list[str]] = {
    "Sandals": ["sandals", "slides", "strappy sandals", "flip-flops", "espadrilles", "mules", "slingbacks"],
    "Sneakers": ["sneakers", "trainers", "canvas shoes", "low-tops", "plimsolls", "kicks", "tennis shoes"],
    "Boots": ["boots", "ankle boots", "booties", "chelsea boots", "knee-high boots", "lace-up boots"],
    "Dresses": ["dress", "midi dress", "sundress", "maxi dress", "frock", "gown", "shift dress"],
    "Jackets": ["jacket", "blazer", "bomber", "denim jacket", "trench", "windbreaker", "puffer"],
    "Jeans": ["jeans", "denims", "skinny jeans", "bootcut jeans", "mom jeans", "denim trousers"],
    "Handbags": ["handbag", "tote", "shoulder bag", "purse", "clutch", "satchel", "crossbody bag"],
    "Scarves": ["scarf", "shawl", "wrap", "stole", "snood", "neckerchief", "pashmina"],
    "Loafers": ["loafers", "slip-ons", "moccasins", "penny loafers", "driving shoes", "boat shoes"],
    "Trainers": ["trainers", "sneakers", "running shoes", "runners", "athletic shoes", "kicks"],
    "Hiking Boots": ["hiking boots", "walking boots", "trekking boots", "hikers", "mountain boots"],
    "Shirts": ["shirt", "button-down", "oxford shirt", "dress shirt", "flannel shirt", "overshirt"],
    "Suits": ["suit", "two-piece suit", "three-piece suit", "tuxedo", "dinner suit", "suit set"],
    "Hoodies": ["hoodie", "hooded sweatshirt", "zip-up hoodie", "sweatshirt", "pullover", "hoody"],
    "Watches": ["watch", "wristwatch", "chronograph", "timepiece", "dive watch", "smartwatch"],
    "Belts": ["belt", "leather belt", "waist belt", "buckle belt", "webbing belt", "braided belt"],
    "Building Blocks": ["building blocks", "building bricks", "construction set", "stacking blocks", "brick kit"],
    "Puzzles": ["puzzle", "jigsaw", "jigsaw puzzle", "brain teaser", "floor puzzle", "puzzle box"],
    "Plush Toys": ["plush toy", "stuffed animal", "teddy bear", "soft toy", "cuddly toy", "plushie"],
    "Pyjamas": ["pyjamas", "pajamas", "pjs", "sleepsuit", "nightwear set", "onesie"],
    "Raincoats": ["raincoat", "rain jacket", "waterproof coat", "slicker", "rain mac", "poncho"],
    "Cookware": ["cookware set", "frying pan", "saucepan", "skillet", "casserole dish", "wok", "stockpot"],
    "Knives": ["knife set", "chef's knife", "santoku", "paring knife", "cleaver", "bread knife"],
    "Coffee Makers": ["coffee maker", "espresso machine", "french press", "cafetiere", "moka pot", "pour-over brewer"],
    "Lamps": ["lamp", "table lamp", "floor lamp", "desk lamp", "pendant light", "reading light"],
    "Cushions": ["cushion", "throw pillow", "scatter cushion", "pillow", "bolster", "floor cushion"],
    "Vases": ["vase", "flower vase", "bud vase", "urn", "amphora", "bottle vase"],
    "Planters": ["planter", "plant pot", "flowerpot", "window box", "hanging basket", "jardiniere"],
    "Garden Tools": ["garden tools", "trowel", "pruning shears", "secateurs", "hand rake", "hoe", "spade"],
    "Yoga Mats": ["yoga mat", "exercise mat", "pilates mat", "workout mat", "fitness mat"],
    "Dumbbells": ["dumbbells", "hand weights", "free weights", "weight set", "kettlebell", "barbell plates"],
    "Tents": ["tent", "dome tent", "two-person tent", "pop-up tent", "shelter", "bivvy"],
    "Backpacks": ["backpack", "rucksack", "daypack", "knapsack", "hiking pack", "travel pack"],
    "Camping Stoves": [
        "camping stove",
        "camp stove",
        "gas burner",
        "backpacking stove",
        "camp cooker",
        "spirit burner",
    ],
    "Bike Helmets": ["bike helmet", "cycling helmet", "bicycle helmet", "road helmet", "mtb helmet"],
    "Bike Lights": ["bike lights", "cycling lights", "rear light", "front light", "headlight set", "led bike lamp"],
    "Headphones": ["headphones", "earbuds", "earphones", "headset", "over-ear cans", "in-ear monitors"],
    "Speakers": ["speaker", "bluetooth speaker", "soundbar", "boombox", "smart speaker", "bookshelf speakers"],
    "Laptops": ["laptop", "notebook", "ultrabook", "chromebook", "notebook computer", "2-in-1"],
    "Keyboards": ["keyboard", "mechanical keyboard", "wireless keyboard", "keypad", "keeb"],
    "Monitors": ["monitor", "display", "screen", "computer screen", "ultrawide", "4k panel"],
    "Phone Cases": ["phone case", "phone cover", "protective case", "bumper case", "folio case", "skin"],
    "Chargers": ["charger", "charging cable", "power adapter", "power bank", "wall plug", "wireless charging pad"],
    "Moisturisers": ["moisturiser", "moisturizer", "face cream", "day cream", "hydrating lotion", "night cream"],
    "Sunscreens": ["sunscreen", "sun cream", "spf 50 lotion", "sunblock", "uv spray", "sun protection fluid"],
    "Perfumes": ["perfume", "eau de parfum", "fragrance", "eau de toilette", "cologne", "scent"],
    "Candles": ["candle", "scented candle", "soy candle", "pillar candle", "tealights", "wax candle"],
}
AUDIENCE: dict[str, list[str]] = {
    "Women": ["women's", "ladies'", "womens", "for her", "woman's"],
    "Men": ["men's", "mens", "for him", "gents'", "man's"],
    "Kids": ["kids'", "children's", "for kids", "toddler", "junior"],
}
# adjectives for titles (the taxonomy's style words first) and phrases for descriptions
STYLE_TITLE: dict[str, list[str]] = {
    s: [*tx.STYLE_WORDS[s], *extra]
    for s, extra in {
        "casual": ["Laid-back", "Weekend", "Lounge", "Comfy", "Off-duty"],
        "formal": ["Dress", "Polished", "Sharp", "Elegant", "Refined"],
        "sporty": ["Athletic", "Training", "Sport", "Dynamic", "Race"],
        "vintage": ["Throwback", "Old-school", "Nostalgic", "Antique", "70s"],
        "minimalist": ["Pure", "Bare", "Understated", "Nordic", "Plain"],
        "bohemian": ["Fringed", "Gypsy", "Festival", "Hippie", "Macrame"],
        "outdoor": ["Expedition", "Summit", "Backcountry", "Wilderness", "Ridge"],
        "luxury": ["Opulent", "Prestige", "Lavish", "Couture", "Deluxe"],
        "eco": ["Sustainable", "Upcycled", "Vegan", "Natural", "Bamboo"],
    }.items()
}
STYLE_PHRASES: dict[str, list[str]] = {
    "casual": [
        "relaxed everyday piece",
        "easy to wear",
        "for lazy sundays",
        "effortless and comfortable",
        "throw-on-and-go",
        "made for lounging",
        "low-key and unfussy",
    ],
    "formal": [
        "tailored for work and occasions",
        "sharp and professional",
        "boardroom ready",
        "crisp, structured lines",
        "for weddings and black-tie evenings",
        "smart enough for the office",
        "impeccably cut",
    ],
    "sporty": [
        "performance-minded athletic design",
        "built for training",
        "sweat-wicking and breathable",
        "engineered for athletes",
        "ready for the gym or the track",
        "high-intensity workouts",
        "keeps up with every rep",
    ],
    "vintage": [
        "retro look with heritage details",
        "inspired by the seventies",
        "old-fashioned charm",
        "a nod to decades past",
        "distressed, worn-in finish",
        "classic mid-century lines",
        "grandma-chic",
    ],
    "minimalist": [
        "clean lines and neutral colours",
        "no-frills design",
        "pared-back and simple",
        "scandi-inspired restraint",
        "less is more",
        "quietly modern",
        "monochrome and uncluttered",
    ],
    "bohemian": [
        "free-spirited patterns and natural textures",
        "festival-ready",
        "embroidered with tassels",
        "artisan, handwoven feel",
        "paisley and earthy prints",
        "a wanderer's soul",
        "hippie-inspired",
    ],
    "outdoor": [
        "rugged gear for the outdoors",
        "weatherproof and tough",
        "trail-tested",
        "made for camping and hiking",
        "survives wind, rain and mud",
        "for adventures off the beaten path",
        "alpine-grade durability",
    ],
    "luxury": [
        "premium materials and a refined finish",
        "handcrafted by artisans",
        "indulgent, high-end details",
        "exquisite craftsmanship",
        "gold-plated accents",
        "a statement of sophistication",
        "lavishly finished",
    ],
    "eco": [
        "sustainable and recycled materials",
        "planet-friendly",
        "ethically sourced",
        "low-impact production",
        "biodegradable packaging",
        "carbon-neutral shipping",
        "made from reclaimed fibres",
    ],
}
TIER_PHRASES: dict[str, list[str]] = {
    "budget": ["great value", "affordable", "budget-friendly", "wallet-friendly", "a bargain", "low price"],
    "mid": ["good quality for the price", "solid everyday quality", "fair price", "reliable quality"],
    "premium": ["designer label", "high-end", "investment piece", "exclusive collection", "luxury label"],
}
USE_PHRASES: dict[str, list[str]] = {
    "for the weekend": ["for the weekend", "for lazy weekends", "for saturday outings"],
    "for the office": ["for the office", "for work", "for the nine-to-five"],
    "for travel": ["for travel", "for trips away", "for your next getaway", "for life on the road"],
    "as a gift": ["as a gift", "to give as a present", "as a birthday surprise"],
    "for everyday use": ["for everyday use", "for daily life", "for every day"],
    "for special occasions": ["for special occasions", "for big nights out", "for celebrations"],
    "for the gym": ["for the gym", "for workouts", "for training sessions"],
    "for the holidays": ["for the holidays", "for the festive season", "for holiday season"],
}
FILLERS = [
    "Free returns within 30 days.",
    "Limited stock.",
    "Ships in 2-3 working days.",
    "Bestseller.",
    "New season.",
    "Customer favourite.",
    "See size guide.",
    "Online exclusive.",
]


def _zipf(rng: np.random.Generator, pool: list[str], s: float = 1.1) -> str:
    """Draw from ``pool`` with probability proportional to 1 / rank^s (rank 1 most common)."""
    w = 1.0 / np.arange(1, len(pool) + 1) ** s
    return pool[int(rng.choice(len(pool), p=w / w.sum()))]


def _typo(rng: np.random.Generator, text: str) -> str:
    """Swap two neighbouring letters of one random word of four or more letters."""
    words = text.split(" ")
    long = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not long:
        return text
    i = long[int(rng.integers(len(long)))]
    w = words[i]
    j = int(rng.integers(len(w) - 1))
    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    return " ".join(words)


def _item_text(
    rng: np.random.Generator, lf: tx.Leaf, style: str, tier: str, brand: str, color: str, material: str, use: str
) -> tuple[str, str]:
    """(title, description) of one item: paraphrased, sometimes terse, sometimes misspelt."""
    noun = _zipf(rng, LEAF_NOUNS[lf.leaf])
    audience = _zipf(rng, AUDIENCE[lf.department]) if lf.department in AUDIENCE and rng.random() < 0.7 else ""
    adjective = _zipf(rng, STYLE_TITLE[style]) if rng.random() < 0.55 else ""
    in_title = [brand] if rng.random() < 0.75 else []
    if audience and not audience.startswith("for ") and rng.random() < 0.7:
        in_title.append(audience)
        audience_text = ""
    else:
        audience_text = audience
    title = " ".join([*in_title, adjective, noun.capitalize() if not adjective else noun]).strip()
    title = " ".join(title.split())
    if rng.random() < 0.6:
        title += f" in {color}" if rng.random() < 0.5 else f", {color}"
    sentences = []
    subject = _zipf(rng, LEAF_NOUNS[lf.leaf]) if rng.random() < 0.6 else "this one"
    if rng.random() < 0.8:
        phrase = _zipf(rng, STYLE_PHRASES[style])
        sentences.append(f"{phrase.capitalize()}: {subject} {audience_text} {_zipf(rng, USE_PHRASES[use])}.")
    else:
        sentences.append(f"{subject.capitalize()} {audience_text} {_zipf(rng, USE_PHRASES[use])}.")
    material_pool = [f"Made of {material}.", f"{material.capitalize()} construction.", f"Crafted from {material}."]
    if rng.random() < 0.7:
        sentences.append(material_pool[int(rng.integers(len(material_pool)))])
    if rng.random() < 0.35:
        sentences.append(f"{_zipf(rng, TIER_PHRASES[tier]).capitalize()}.")
    if not in_title and rng.random() < 0.6:
        sentences.append(f"By {brand}.")
    if rng.random() < 0.5:
        sentences.append(FILLERS[int(rng.integers(len(FILLERS)))])
    order = [0, *(1 + rng.permutation(len(sentences) - 1))]
    description = " ".join(" ".join(sentences[k].split()) for k in order)
    if rng.random() < 0.15:
        description = _typo(rng, description)
    if rng.random() < 0.08:
        title = title.lower()
    return title, description


def _side_stream(rng: np.random.Generator, key: int) -> np.random.Generator:
    """A generator of its own, derived from ``rng``'s seed and ``key``: what it draws leaves
    every draw of ``rng`` unchanged (a new kind of value does not move the existing ones)."""
    seq = cast(np.random.SeedSequence, rng.bit_generator.seed_seq)
    return np.random.default_rng(np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, key)))


def _items(rng: np.random.Generator, n: int, start: datetime, end: datetime) -> pd.DataFrame:
    leaves = tx.leaves()
    styles = list(tx.STYLES)
    tiers = list(tx.TIERS)
    leaf_pop = rng.dirichlet(np.full(len(leaves), 2.0))
    leaf_idx = rng.choice(len(leaves), size=n, p=leaf_pop)
    leaf_idx[: len(leaves)] = np.arange(min(n, len(leaves)))[: min(n, len(leaves))]
    style_idx = rng.integers(0, len(styles), n)
    tier_idx = rng.choice(len(tiers), size=n, p=[0.35, 0.45, 0.20])
    rows = []
    new_cut = int(n * (1 - NEW_ITEM_SHARE))
    # wording draws from its own stream so that prices, dates, users and events stay the same
    text_rng = _side_stream(rng, 0x7E47)
    # so does the items' hidden quality (what their reviews' ratings follow)
    quality = _side_stream(rng, 0x9A11).beta(4, 2, n)
    for i in range(n):
        lf = leaves[leaf_idx[i]]
        style = styles[style_idx[i]]
        tier = tiers[tier_idx[i]]
        brand = tx.BRANDS[tier][int(rng.integers(len(tx.BRANDS[tier])))]
        rng.integers(3)  # a draw the earlier wording used; kept so every later draw is unchanged
        color = COLORS[int(rng.integers(len(COLORS)))]
        material = MATERIALS[int(rng.integers(len(MATERIALS)))]
        use = USE_CASES[int(rng.integers(len(USE_CASES)))]
        lo, hi = tx.PRICE_BANDS[lf.department]
        price = round(float(rng.uniform(lo, hi)) * tx.TIER_PRICE_FACTOR[tier], 2)
        title, description = _item_text(text_rng, lf, style, tier, brand, color, material, use)
        if i < new_cut:
            created = start - timedelta(days=float(rng.uniform(1, 365)))
        else:  # released after the last recorded event: a genuinely new item
            created = end + timedelta(hours=float(rng.uniform(1, 20)))
        rows.append(
            {
                "item_id": f"I{i + 1:06d}",
                "title": title,
                "description": description,
                "category_path": lf.path,
                "brand": brand,
                "price": price,
                "attributes": json.dumps({"color": color, "material": material}),
                "created_at": created.replace(microsecond=0),
                "_leaf": int(leaf_idx[i]),
                "_style": int(style_idx[i]),
                "_tier": int(tier_idx[i]),
                "_pop": float(rng.lognormal(0.0, 1.0)),
                "_new": i >= new_cut,
                "_quality": float(quality[i]),
            }
        )
    return pd.DataFrame(rows)


def _users(rng: np.random.Generator, n: int, start: datetime) -> pd.DataFrame:
    countries = ["DE", "FR", "GB", "NL", "ES", "IT", "SE", "PL"]
    signup = [start - timedelta(days=float(d)) for d in rng.uniform(0, 700, n)]
    countries_drawn = rng.choice(countries, n)
    # consent draws from its own stream so that every other draw of the shop stays the same
    consent_rng = _side_stream(rng, 0xC0C5)
    return pd.DataFrame(
        {
            "user_id": [f"U{i + 1:07d}" for i in range(n)],
            "signup_time": [s.replace(microsecond=0) for s in signup],
            "country": countries_drawn,
            "marketing_opt_out": consent_rng.random(n) < OPT_OUT_SHARE,
        }
    )


def _interests(rng: np.random.Generator, n_users: int, n_leaves: int) -> dict[str, np.ndarray]:
    """Per user: 4 interest slots over leaves. Slot status 0=active, 1=emerging, 2=dormant."""
    dept_of_leaf = np.array([list(tx.TREE).index(lf.department) for lf in tx.leaves()])
    n_dept = len(tx.TREE)
    slots = np.zeros((n_users, 4), dtype=np.int64)
    status = np.zeros((n_users, 4), dtype=np.int64)
    home_dept = rng.integers(0, n_dept, n_users)
    for s in range(4):
        same = rng.random(n_users) < 0.55  # interests cluster within a department
        dept = np.where(same, home_dept, rng.integers(0, n_dept, n_users))
        for d in range(n_dept):
            cand = np.flatnonzero(dept_of_leaf == d)
            m = dept == d
            slots[m, s] = rng.choice(cand, m.sum())
    # de-duplicate slots per user by nudging repeated leaves to a random one
    for s in range(1, 4):
        dup = (slots[:, [s]] == slots[:, :s]).any(axis=1)
        slots[dup, s] = (slots[dup, s] + rng.integers(1, n_leaves, dup.sum())) % n_leaves
    n_active = rng.choice([1, 2, 3], n_users, p=[0.3, 0.45, 0.25])
    status[:] = 2
    for s in range(3):
        status[n_active > s, s] = 0
    emerging = rng.random(n_users) < 0.3
    last_active = n_active - 1
    rows = np.arange(n_users)
    status[rows[emerging & (n_active > 1)], last_active[emerging & (n_active > 1)]] = 1
    has_dormant = rng.random(n_users) < 0.65
    status[~has_dormant, 3] = 3  # 3 = unused slot
    w_start = rng.dirichlet(np.ones(4), n_users)
    w_end = rng.dirichlet(np.ones(4), n_users)
    style_pref = rng.integers(0, len(tx.STYLES), n_users)
    tier_pref = rng.choice(len(tx.TIERS), n_users, p=[0.35, 0.45, 0.20])
    return {
        "slots": slots,
        "status": status,
        "w_start": w_start,
        "w_end": w_end,
        "style": style_pref,
        "tier": tier_pref,
    }


def _visible_weights(intr: dict[str, np.ndarray], users: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Interest-slot weights visible in behaviour for users at relative time t in [0, 1]."""
    w = (1 - t)[:, None] * intr["w_start"][users] + t[:, None] * intr["w_end"][users]
    st = intr["status"][users]
    w = np.where(st == 0, w, 0.0)
    w = np.where((st == 1) & (t[:, None] >= 0.5), w + 0.3, w)
    w = w / w.sum(axis=1, keepdims=True)
    return w


def generate(size: str = "tiny", seed: int = 7, end: datetime = DEFAULT_END) -> dict[str, pd.DataFrame]:
    """Generate a shop. Returns landing tables ``items``, ``events``, ``users`` and the
    ground-truth tables ``truth_user_interests``, ``truth_item_tags`` and ``truth_item_quality``
    (each item's hidden quality in [0, 1], what review ratings follow)."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {sorted(SIZES)}")
    cfg = SIZES[size]
    with Progress(GENERATE_STEPS, f"generate the {size} shop") as progress:
        return _generate(cfg, seed, end, progress)


# the steps of _generate that report progress (items, users, sessions, searches and slates,
# views to reviews, the events table, the ground truth)
GENERATE_STEPS = 7


def _generate(cfg: ShopSize, seed: int, end: datetime, progress: Progress) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    start = end - timedelta(days=cfg.days)
    leaves = tx.leaves()
    items = _items(rng, cfg.items, start, end)
    progress.update(1, f"{cfg.items:,} items")
    users = _users(rng, cfg.users, start)
    intr = _interests(rng, cfg.users, len(leaves))
    progress.update(1, f"{cfg.users:,} users")

    # ---- sessions -------------------------------------------------------------------------
    n_sess = np.maximum(1, rng.poisson(cfg.sessions_per_user, cfg.users))
    s_user = np.repeat(np.arange(cfg.users), n_sess)
    s_t = rng.random(len(s_user))
    n_s = len(s_user)
    w = _visible_weights(intr, s_user, s_t)
    slot = (rng.random(n_s)[:, None] > np.cumsum(w, axis=1)).sum(axis=1).clip(0, 3)
    s_leaf = intr["slots"][s_user, slot]
    noise = rng.random(n_s) < 0.08
    s_leaf = np.where(noise, rng.integers(0, len(leaves), n_s), s_leaf)
    s_start = np.datetime64(start.replace(tzinfo=None), "s") + (s_t * cfg.days * 86400).astype("timedelta64[s]")

    progress.update(1, f"{n_s:,} sessions")
    parts = _search_and_slate_blocks(rng, intr, items, s_user, s_leaf)
    progress.update(1, "searches and slates")
    parts += _funnel_blocks(rng, intr, items, s_user, s_leaf)
    progress.update(1, "views, carts, purchases, reviews")
    ev = pd.concat(parts, ignore_index=True)
    ev = ev.sort_values(["_sess", "_order"], kind="stable").reset_index(drop=True)
    times = _event_times(rng, ev["_sess"].to_numpy(), s_start, end)
    events = _events_table(ev, times, seed, users, items, s_user)

    progress.update(1, f"{len(events):,} events")
    truth, item_tags = _ground_truth(users, items, intr)
    progress.update(1, "ground truth")
    landing_items = items[[c for c in items.columns if not c.startswith("_")]].copy()
    landing_items["created_at"] = pd.to_datetime(landing_items["created_at"], utc=True)
    users["signup_time"] = pd.to_datetime(users["signup_time"], utc=True)
    return {
        "items": landing_items,
        "events": events,
        "users": users,
        "truth_user_interests": truth,
        "truth_item_tags": item_tags,
        "truth_item_quality": items[["item_id", "_quality"]].rename(columns={"_quality": "quality"}),
    }


def _block(sess: np.ndarray, order: np.ndarray, **cols: object) -> pd.DataFrame:
    """Events of one kind: their sessions, their order within the session, their columns."""
    return pd.DataFrame({"_sess": sess, "_order": order, **cols})


def _search_and_slate_blocks(
    rng: np.random.Generator,
    intr: dict[str, np.ndarray],
    items: pd.DataFrame,
    s_user: np.ndarray,
    s_leaf: np.ndarray,
) -> list[pd.DataFrame]:
    """Searches at session start, and the previous (uniform random) recommender's slates with
    their position-biased clicks."""
    n_s = len(s_user)
    leaves, styles = tx.leaves(), list(tx.STYLES)
    old = ~items["_new"].to_numpy()
    item_leaf, item_style = items["_leaf"].to_numpy(), items["_style"].to_numpy()
    parts: list[pd.DataFrame] = []
    # searches at session start
    has_search = rng.random(n_s) < 0.5
    ss = np.flatnonzero(has_search)
    leaf_names = np.array([lf.leaf.lower() for lf in leaves])
    style_names = np.array(styles)
    with_style = rng.random(len(ss)) < 0.4
    q = np.where(
        with_style,
        np.char.add(np.char.add(style_names[intr["style"][s_user[ss]]], " "), leaf_names[s_leaf[ss]]),
        leaf_names[s_leaf[ss]],
    )
    parts.append(_block(ss, np.zeros(len(ss)), event_type="search", _item=-1, query=q))

    # recommendation slates from the previous (uniform random) recommender
    has_slate = rng.random(n_s) < 0.3
    sl = np.flatnonzero(has_slate)
    k = len(POSITION_BIAS)
    sl_sess = np.repeat(sl, k)
    sl_pos = np.tile(np.arange(1, k + 1), len(sl))
    old_idx = np.flatnonzero(old)
    sl_item = old_idx[rng.integers(0, len(old_idx), len(sl_sess))]
    parts.append(_block(sl_sess, 1 + sl_pos * 0.01, event_type="impression", _item=sl_item, position=sl_pos))
    u = s_user[sl_sess]
    liked = (intr["slots"][u] == item_leaf[sl_item][:, None]) & (intr["status"][u] < 3)
    p_click = POSITION_BIAS[sl_pos - 1] * np.where(liked.any(axis=1), 0.30, 0.02)
    p_click = p_click * np.where(item_style[sl_item] == intr["style"][u], 1.3, 1.0)
    clicked = rng.random(len(sl_sess)) < p_click
    parts.append(
        _block(
            sl_sess[clicked],
            1.5 + sl_pos[clicked] * 0.01,
            event_type="click",
            _item=sl_item[clicked],
            position=sl_pos[clicked],
        )
    )
    return parts


def _funnel_blocks(
    rng: np.random.Generator,
    intr: dict[str, np.ndarray],
    items: pd.DataFrame,
    s_user: np.ndarray,
    s_leaf: np.ndarray,
) -> list[pd.DataFrame]:
    """Views of the session's leaf, then carts, purchases and reviews (text following the
    rating, the rating the style match and the item's hidden quality: ``ml.shop.reviews``)."""
    n_s = len(s_user)
    item_style = items["_style"].to_numpy()
    parts: list[pd.DataFrame] = []
    # views, carts, purchases, reviews
    n_views = 1 + rng.poisson(4, n_s)
    v_sess = np.repeat(np.arange(n_s), n_views)
    v_order = 2 + np.concatenate([np.arange(n) for n in n_views]) if n_s else np.zeros(0)
    v_item = _pick_items(rng, intr, items, s_leaf[v_sess], s_user[v_sess], len(tx.TIERS))
    parts.append(_block(v_sess, v_order, event_type="view", _item=v_item))
    carted = rng.random(len(v_sess)) < 0.15
    c_sess, c_item, c_order = v_sess[carted], v_item[carted], v_order[carted] + 0.3
    parts.append(_block(c_sess, c_order, event_type="add_to_cart", _item=c_item, quantity=1))
    bought = rng.random(len(c_sess)) < 0.45
    p_sess, p_item, p_order = c_sess[bought], c_item[bought], c_order[bought] + 100
    qty = 1 + (rng.random(len(p_sess)) < 0.15).astype(np.int64)
    parts.append(_block(p_sess, p_order, event_type="purchase", _item=p_item, quantity=qty))
    reviewed = rng.random(len(p_sess)) < 0.25
    r_sess, r_item = p_sess[reviewed], p_item[reviewed]
    match = item_style[r_item] == intr["style"][s_user[r_sess]]
    rating = review_ratings(rng, match, items["_quality"].to_numpy()[r_item])
    text = review_texts(_side_stream(rng, 0x7E48), rating)
    parts.append(
        _block(r_sess, p_order[reviewed] + 1000, event_type="review", _item=r_item, rating=rating, review_text=text)
    )
    return parts


def _pick_items(
    rng: np.random.Generator,
    intr: dict[str, np.ndarray],
    items: pd.DataFrame,
    leaf: np.ndarray,
    user: np.ndarray,
    n_tiers: int,
) -> np.ndarray:
    """Sample one old item per row from `leaf`, preferring the user's style and tier."""
    old = ~items["_new"].to_numpy()
    item_leaf, item_pop = items["_leaf"].to_numpy(), items["_pop"].to_numpy()
    item_style, item_tier = items["_style"].to_numpy(), items["_tier"].to_numpy()
    out = np.empty(len(leaf), dtype=np.int64)
    u_style = intr["style"][user]
    u_tier = intr["tier"][user]
    r = rng.random(len(leaf))
    for lf in np.unique(leaf):
        cand = np.flatnonzero((item_leaf == lf) & old)
        if len(cand) == 0:
            cand = np.flatnonzero(old)
        rows = np.flatnonzero(leaf == lf)
        key = u_style[rows] * n_tiers + u_tier[rows]
        for k in np.unique(key):
            sel = rows[key == k]
            st, ti = divmod(int(k), n_tiers)
            wt = item_pop[cand] * np.where(item_style[cand] == st, 4.0, 1.0)
            wt = wt * np.where(item_tier[cand] == ti, 1.5, 1.0)
            cdf = np.cumsum(wt) / wt.sum()
            out[sel] = cand[np.searchsorted(cdf, r[sel]).clip(0, len(cand) - 1)]
    return out


def _event_times(rng: np.random.Generator, sess_arr: np.ndarray, s_start: np.ndarray, end: datetime) -> np.ndarray:
    """Each event's time: its session's start plus exponential gaps (about a minute), before ``end``."""
    gaps = rng.exponential(55.0, len(sess_arr)).astype("int64") + 1
    csum = np.cumsum(gaps)
    first = np.r_[0, np.flatnonzero(np.diff(sess_arr)) + 1]
    base = np.repeat(csum[first] - gaps[first], np.diff(np.r_[first, len(sess_arr)]))
    offset = csum - base
    times = s_start[sess_arr] + offset.astype("timedelta64[s]")
    return np.minimum(times, np.datetime64(end.replace(tzinfo=None), "s") - np.timedelta64(1, "s"))


def _events_table(
    ev: pd.DataFrame, times: np.ndarray, seed: int, users: pd.DataFrame, items: pd.DataFrame, s_user: np.ndarray
) -> pd.DataFrame:
    """The landing events (ids, users, sessions, items, prices, ...) of the sorted event blocks."""
    sess_arr = ev["_sess"].to_numpy()
    item_codes = ev["_item"].to_numpy()
    has_item = item_codes >= 0
    n_ev = len(ev)
    event_type = ev["event_type"].to_numpy()
    events = pd.DataFrame(
        {
            "event_id": [f"E{seed:03d}{i:010d}" for i in range(n_ev)],
            "event_time": pd.to_datetime(times).tz_localize("UTC"),
            "user_id": users["user_id"].to_numpy()[s_user[sess_arr]],
            "session_id": [f"S{seed:03d}{s:09d}" for s in sess_arr],
            "event_type": event_type,
            "item_id": np.where(has_item, items["item_id"].to_numpy()[np.maximum(item_codes, 0)], None),
            "query": ev.get("query"),
            "price": np.where(
                np.isin(event_type, ["add_to_cart", "purchase"]),
                items["price"].to_numpy()[np.maximum(item_codes, 0)],
                np.nan,
            ),
            "quantity": ev.get("quantity"),
            "rating": ev.get("rating"),
            "review_text": ev.get("review_text"),
            "recommendation_id": np.where(
                np.isin(event_type, ["impression", "click"]),
                np.char.add("R", np.char.zfill(sess_arr.astype(str), 9)).astype(object),
                np.array(None, dtype=object),
            ),
            "position": ev.get("position"),
        }
    )
    for col in ("quantity", "rating", "position"):
        events[col] = events[col].astype("Int64")
    return events.sort_values(["event_time", "event_id"], kind="stable").reset_index(drop=True)


def _ground_truth(
    users: pd.DataFrame, items: pd.DataFrame, intr: dict[str, np.ndarray]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The users' true interests (leaf tags by status, and their style) and the items' true tags."""
    leaves = tx.leaves()
    styles, tiers = list(tx.STYLES), list(tx.TIERS)
    status_names = np.array(["active", "emerging", "dormant", "unused"])
    gt_rows = {
        "user_id": np.repeat(users["user_id"].to_numpy(), 4),
        "tag": np.array([lf.tag for lf in leaves])[intr["slots"].ravel()],
        "status": status_names[intr["status"].ravel()],
        "weight_start": intr["w_start"].ravel(),
        "weight_end": intr["w_end"].ravel(),
    }
    truth = pd.DataFrame(gt_rows)
    truth = truth[truth["status"] != "unused"]
    style_truth = pd.DataFrame(
        {
            "user_id": users["user_id"],
            "tag": [f"style:{styles[s]}" for s in intr["style"]],
            "status": "active",
            "weight_start": 1.0,
            "weight_end": 1.0,
        }
    )
    truth = pd.concat([truth, style_truth], ignore_index=True)
    truth = truth.drop_duplicates(["user_id", "tag"]).reset_index(drop=True)
    item_tags = pd.DataFrame(
        {
            "item_id": np.repeat(items["item_id"].to_numpy(), 3),
            "tag": np.stack(
                [
                    np.array([leaves[i].tag for i in items["_leaf"].to_numpy()]),
                    np.array([f"style:{styles[s]}" for s in items["_style"].to_numpy()]),
                    np.array([f"tier:{tiers[t]}" for t in items["_tier"].to_numpy()]),
                ],
                axis=1,
            ).ravel(),
        }
    )
    return truth, item_tags


FORMATS = ("parquet", "csv", "jsonl")


def _write_table(df: pd.DataFrame, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        df.to_parquet(path, index=False)
    elif fmt == "csv":
        df.to_csv(path, index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    else:
        df.to_json(path, orient="records", lines=True, date_format="iso", date_unit="s")


def write_shop(
    out: Path, size: str = "tiny", seed: int = 7, fmt: str = "parquet", end: datetime = DEFAULT_END
) -> dict[str, int]:
    """Generate and write a landing batch to ``out``. Returns row counts per table."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: use parquet, csv or jsonl")
    tables = generate(size=size, seed=seed, end=end)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    truth_dir = out / "_ground_truth"
    truth_dir.mkdir(exist_ok=True)
    counts: dict[str, int] = {}
    with Progress(3, f"write {out}", unit="file") as progress:
        for name in ("items", "events", "users"):
            _write_table(tables[name], out / f"{name}.{fmt}", fmt)
            counts[name] = len(tables[name])
            progress.update(1, name)
    tables["truth_user_interests"].to_parquet(truth_dir / "user_interests.parquet", index=False)
    tables["truth_item_tags"].to_parquet(truth_dir / "item_tags.parquet", index=False)
    tables["truth_item_quality"].to_parquet(truth_dir / "item_quality.parquet", index=False)
    manifest = {
        "size": size,
        "seed": seed,
        "format": fmt,
        "end": end.isoformat(),
        "counts": counts,
        "config": asdict(SIZES[size]),
    }
    (out / "_ground_truth" / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return counts
