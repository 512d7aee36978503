"""The synthetic shop's catalogue taxonomy and its interest-tag vocabulary.

One source of truth: the generator draws items and user interests from it, and
``python -m ml shop vocabulary`` renders the dbt seed ``dbt/seeds/tag_vocabulary.csv``.
Tags are ``cat:<leaf>`` (a leaf category), ``style:<style>`` and ``tier:<brand tier>``.
"""

from __future__ import annotations

from dataclasses import dataclass

# department -> category -> leaves (noun used in titles and queries)
TREE: dict[str, dict[str, list[str]]] = {
    "Women": {
        "Shoes": ["Sandals", "Sneakers", "Boots"],
        "Clothing": ["Dresses", "Jackets", "Jeans"],
        "Accessories": ["Handbags", "Scarves"],
    },
    "Men": {
        "Shoes": ["Loafers", "Trainers", "Hiking Boots"],
        "Clothing": ["Shirts", "Suits", "Hoodies"],
        "Accessories": ["Watches", "Belts"],
    },
    "Kids": {
        "Toys": ["Building Blocks", "Puzzles", "Plush Toys"],
        "Clothing": ["Pyjamas", "Raincoats"],
    },
    "Home": {
        "Kitchen": ["Cookware", "Knives", "Coffee Makers"],
        "Decor": ["Lamps", "Cushions", "Vases"],
        "Garden": ["Planters", "Garden Tools"],
    },
    "Sports": {
        "Fitness": ["Yoga Mats", "Dumbbells"],
        "Outdoor": ["Tents", "Backpacks", "Camping Stoves"],
        "Cycling": ["Bike Helmets", "Bike Lights"],
    },
    "Electronics": {
        "Audio": ["Headphones", "Speakers"],
        "Computers": ["Laptops", "Keyboards", "Monitors"],
        "Phones": ["Phone Cases", "Chargers"],
    },
    "Beauty": {
        "Skincare": ["Moisturisers", "Sunscreens"],
        "Fragrance": ["Perfumes", "Candles"],
    },
}

STYLES: dict[str, str] = {
    "casual": "relaxed everyday pieces",
    "formal": "tailored items for work and occasions",
    "sporty": "performance-minded athletic design",
    "vintage": "retro looks and heritage details",
    "minimalist": "clean lines and neutral colours",
    "bohemian": "free-spirited patterns and natural textures",
    "outdoor": "rugged gear for the outdoors",
    "luxury": "premium materials and refined finish",
    "eco": "sustainable and recycled materials",
}

TIERS: dict[str, str] = {
    "budget": "value-priced brands",
    "mid": "mid-market brands",
    "premium": "premium and designer brands",
}

STYLE_WORDS: dict[str, list[str]] = {
    "casual": ["Everyday", "Relaxed", "Easy"],
    "formal": ["Tailored", "Classic", "Smart"],
    "sporty": ["Active", "Performance", "Pro"],
    "vintage": ["Retro", "Heritage", "Classic"],
    "minimalist": ["Essential", "Clean", "Simple"],
    "bohemian": ["Boho", "Woven", "Free"],
    "outdoor": ["Trail", "Rugged", "Alpine"],
    "luxury": ["Signature", "Premium", "Atelier"],
    "eco": ["Recycled", "Organic", "Green"],
}

BRANDS: dict[str, list[str]] = {
    "budget": ["Basico", "ValueMart", "Everyday Co", "Thrifto"],
    "mid": ["Northwind", "Larkspur", "Bramble", "Cobalt & Co", "Fieldhouse"],
    "premium": ["Maison Vale", "Aurelius", "Sable Atelier", "Kestrel"],
}

# price band per department (min, max) in the shop currency
PRICE_BANDS: dict[str, tuple[float, float]] = {
    "Women": (15, 250),
    "Men": (15, 300),
    "Kids": (5, 80),
    "Home": (8, 400),
    "Sports": (10, 500),
    "Electronics": (10, 1500),
    "Beauty": (5, 150),
}
TIER_PRICE_FACTOR = {"budget": 0.6, "mid": 1.0, "premium": 1.9}


def slug(text: str) -> str:
    return "_".join(text.lower().replace("&", "and").split())


@dataclass(frozen=True)
class Leaf:
    department: str
    category: str
    leaf: str

    @property
    def path(self) -> str:
        return f"{self.department} > {self.category} > {self.leaf}"

    @property
    def tag(self) -> str:
        return f"cat:{slug(self.department)}_{slug(self.leaf)}"


def leaves() -> list[Leaf]:
    return [Leaf(d, c, leaf) for d, cats in TREE.items() for c, ls in cats.items() for leaf in ls]


@dataclass(frozen=True)
class Tag:
    tag: str
    kind: str
    parent: str
    description: str


def vocabulary() -> list[Tag]:
    """The interest-tag vocabulary: leaf categories, styles and brand tiers."""
    tags: list[Tag] = []
    for d in TREE:
        tags.append(Tag(f"dept:{slug(d)}", "department", "", f"Everything in the {d} department"))
    for lf in leaves():
        tags.append(
            Tag(
                lf.tag,
                "category",
                f"dept:{slug(lf.department)}",
                f"{lf.leaf} in {lf.department} > {lf.category}",
            )
        )
    for s, desc in STYLES.items():
        tags.append(Tag(f"style:{s}", "style", "", f"{s.capitalize()} style: {desc}"))
    for t, desc in TIERS.items():
        tags.append(Tag(f"tier:{t}", "brand-tier", "", f"{t.capitalize()} tier: {desc}"))
    return tags


VOCABULARY_VERSION = "2026.11.1"


def vocabulary_csv() -> str:
    lines = ["tag,kind,parent,description,vocabulary_version"]
    for t in vocabulary():
        desc = t.description.replace('"', "'")
        lines.append(f'{t.tag},{t.kind},{t.parent},"{desc}",{VOCABULARY_VERSION}')
    return "\n".join(lines) + "\n"
