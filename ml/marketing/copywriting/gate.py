"""The grounding gate: a copy variant may only state what the catalogue and the campaign say.

:func:`check` returns the reasons a variant fails (none: it passes), each ``"<rule>: <detail>"``:

- ``banned``: it contains a banned phrase (case-insensitive, whole words);
- ``product``: it names another catalogue product (another item's full title);
- ``brand``: it names a brand other than the featured product's;
- ``category``: it names a catalogue category that is not the product's: a leaf ("Tents",
  singular or plural) or a title word the catalogue uses for one leaf only ("knife"), unless
  the catalogue's own title or description of the product uses the word;
- ``attribute``: it states an attribute value (a colour, a material: the values of the items'
  ``attributes``) that is not the product's;
- ``price``: a price (two decimals, or a number with a currency) that is neither the product's
  catalogue price nor its campaign price;
- ``discount``: a percentage other than the campaign's discount, or any percentage when the
  campaign offers none;
- ``number``: any other number that neither the product's catalogue text (title, description)
  nor the campaign states (a size, a count, a date the model made up);
- ``repeated``: a word written twice in a row ("for for"), the commonest way a small model stalls;
- ``form``: a sentence whose first word is in lower case ("… 369.89. this one for work.") or that
  starts with punctuation (": This one"), a word ending in a hanging hyphen ("Embroidered-"),
  or text that stops mid-sentence (no full stop, question or exclamation mark at its end): the
  fragments a small model leaves, which read as broken copy however true they are (the
  product's title and brand and the catalogue's own phrasing of the product excepted: "St.
  john's wort");
- ``word``: a word that neither the catalogue's text, the campaign's title nor the dictionary
  (the whole words of MiniLM's vocabulary, ``ml.tagging.encoder``) knows, an ``s`` or ``'s``
  ending allowed: the made-up or glued words a small model writes ("forpely", "andimpact").

The featured product's own title is a catalogue fact: it is taken out of the text before the
product, brand and category rules read it (titles name nouns of neighbouring categories).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

PRICE = re.compile(
    r"(?:[$€£]\s*(\d+(?:[.,]\d{1,2})?))"
    r"|(?<![\d.,])(\d+[.,]\d{2})(?![\d])"
    r"|(?<![\d.,])(\d+(?:[.,]\d{1,2})?)\s*(?:eur|euros?|usd|dollars?|gbp|pounds?)\b",
    re.IGNORECASE,
)
REPEATED = re.compile(r"\b([a-z]+) \1\b")
# the end of a sentence: a full stop, question or exclamation mark before a space or the end
# (not the point of a price), closing quotes or brackets included
SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s|$)")
# a sentence's first word (from its first letter or digit), what may come before it (quotes,
# brackets), and a hyphen left hanging at a word's end ("everyday- sophistication")
FIRST_WORD = re.compile(r"[^\W_]\S*")
OPENING = re.compile(r"^[\"'(\[]*[^\W_]")
HANGING_HYPHEN = re.compile(r"\b[a-z]+-(?=\s|$)", re.IGNORECASE)
NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
PERCENT = re.compile(r"(?<![\d.,])(\d+(?:[.,]\d+)?)\s*(?:%|percent\b|per cent\b)", re.IGNORECASE)
# a title this short is a common phrase ("Tent") rather than the name of one product
MIN_TITLE_CHARS = 12
# a title word names a category when this many items use it, this share of them in that category
TITLE_WORD = re.compile(r"[a-z]{3,}(?:-[a-z]+)*")
MIN_WORD_ITEMS = 3
MIN_WORD_SHARE = 0.9
# a word of the word rule: letters (accented ones too: "crème"), joined by apostrophes ("co's");
# hyphens and digits split words
WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")


def _words(phrase: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![a-z0-9]){re.escape(phrase.lower())}(?![a-z0-9])")


@dataclass(frozen=True)
class Offer:
    """What one variant may say: the featured product (a row of ``lm.product_facts``) and the
    campaign's discount in percent (None: no discount)."""

    product: Any
    discount_percent: float | None = None
    campaign_title: str = ""

    @property
    def sale_price(self) -> float | None:
        if self.discount_percent is None:
            return None
        return round(float(self.product.price) * (1 - self.discount_percent / 100), 2)


@dataclass(frozen=True)
class Catalogue:
    """What the gate knows of the catalogue: brands, category words, attribute values and titles."""

    brands: dict[str, re.Pattern[str]]  # lower-case brand -> its pattern
    categories: dict[str, tuple[str, re.Pattern[str]]]  # word -> (the leaf it names, pattern)
    attributes: dict[str, dict[str, re.Pattern[str]]]  # attribute -> lower-case value -> pattern
    titles: dict[str, str]  # lower-case title -> item_id
    words: frozenset[str] = frozenset()  # every word the catalogue's text and the dictionary know

    @classmethod
    def from_facts(cls, facts: pd.DataFrame, allowed: list[str] | tuple[str, ...] = ()) -> Catalogue:
        """From ``lm.product_facts`` rows (and ``allowed``: words the word rule accepts beyond
        the catalogue's and the dictionary's). Category words are each leaf's name (singular and
        plural) and every title word of at least 3 letters that at least ``MIN_WORD_ITEMS`` items
        use in their title or description, ``MIN_WORD_SHARE`` of them in one leaf ("knife" names
        Knives; "day", in many descriptions, names nothing)."""
        brands = {b.lower(): _words(b) for b in facts["brand"].unique() if b.strip()}
        words: dict[str, str] = {}
        for leaf in facts["category"].unique():
            low = leaf.lower()
            words |= {form: leaf for form in (low, low[:-1] if low.endswith("s") else low + "s") if low}
        in_titles = set(facts["title"].str.lower().str.findall(TITLE_WORD).explode().dropna())
        text = (facts["title"] + " " + facts["description"]).str.lower().str.findall(TITLE_WORD)
        used = facts.assign(word=text).explode("word").dropna(subset=["word"])
        used = used[used["word"].isin(in_titles)].drop_duplicates(["item_id", "word"])
        per_leaf = used.groupby(["word", "category"]).size()
        totals = per_leaf.groupby(level="word").sum()
        top = per_leaf.sort_values(ascending=False).groupby(level="word").head(1).reset_index(level="category")
        top = top.assign(share=top[0] / totals.reindex(top.index), items=totals.reindex(top.index))
        named = top[(top["items"] >= MIN_WORD_ITEMS) & (top["share"] >= MIN_WORD_SHARE)]
        words = {**dict(zip(named.index, named["category"], strict=True)), **words}
        attributes: dict[str, dict[str, re.Pattern[str]]] = {}
        for values in facts["attributes"]:
            for key, value in values.items():
                attributes.setdefault(key, {})[str(value).lower()] = _words(str(value))
        titles = {
            t.lower(): i for i, t in zip(facts["item_id"], facts["title"], strict=True) if len(t) >= MIN_TITLE_CHARS
        }
        categories = {w: (leaf, _words(w)) for w, leaf in words.items()}
        text = facts[["title", "brand", "category", "description"]].astype(str).agg(" ".join, axis=1)
        text = pd.concat([text, facts["attributes"].map(lambda a: " ".join(map(str, a.values())))])
        known = set(WORD.findall(" ".join([*text, *allowed]).lower())) | dictionary()
        return cls(brands, categories, attributes, titles, frozenset(known))


@cache
def dictionary() -> frozenset[str]:
    """The whole words of MiniLM's vocabulary (``vocab.txt`` of the packaged encoder): about
    21,700 English words; single letters only "a" and "i"."""
    from ml.tagging.encoder import resolve_model_path

    lines = (Path(resolve_model_path()) / "vocab.txt").read_text(encoding="utf-8").split()
    return frozenset(w for w in lines if w.isascii() and w.isalpha() and (len(w) > 1 or w in "ai"))


def check(text: str, offer: Offer, catalogue: Catalogue, banned: list[str]) -> list[str]:
    """The reasons ``text`` fails the gate for ``offer`` (module docstring); empty: it passes."""
    low = " ".join(text.lower().split())
    product = offer.product
    reasons = [f"banned: '{b}'" for b in banned if b.strip() and _words(" ".join(b.split())).search(low)]
    rest = low.replace(" ".join(str(product.title).lower().split()), " ")
    own = _own_text(product)
    reasons += _names(rest, own, product, catalogue)
    reasons += _amounts(low, own, offer)
    reasons += [f"repeated: '{m.group(0)}'" for m in REPEATED.finditer(low)]
    reasons += _form(" ".join(text.split()), (str(product.title), str(product.brand)), own)
    reasons += _unknown(low, catalogue.words, set(WORD.findall(offer.campaign_title.lower())))
    return list(dict.fromkeys(reasons))


def _unknown(low: str, known: frozenset[str], campaign: set[str]) -> list[str]:
    """The word rule: the words of ``low`` that neither ``known`` (the catalogue's and the
    dictionary's words) nor ``campaign`` holds, as written or without an ``'s``, ``s`` or ``es``
    ending."""
    return [
        f"word: '{w}' is no word of the catalogue, the campaign or the dictionary"
        for w in dict.fromkeys(WORD.findall(low))
        if not any(
            w.removesuffix(end) in known or w.removesuffix(end) in campaign
            for end in ("", "'s", "s", "es")
            if w.endswith(end)
        )
    ]


def _form(text: str, names: tuple[str, ...] = (), own: str = "") -> list[str]:
    """The form rule: each sentence starts with a capital letter or a digit (or a name written
    in mixed case, "iPhone"; quotes and brackets may open it), no word ends in a hanging
    hyphen, and the text ends a sentence. The product's ``names`` (title, brand) are catalogue
    facts, each read as one capitalised word ("St. john's wort", "e.l.f. cosmetics"), and what
    the product's own text ``own`` (lower case) writes may be written as it is ("approx. one a
    day", "low- and high-rise")."""
    for name in sorted(filter(None, (" ".join(n.split()) for n in names)), key=len, reverse=True):
        text = text.replace(name, "Name")
    ends = [m.end() for m in SENTENCE_END.finditer(text)]
    reasons = []
    for begin, end in zip([0, *ends], [*ends, len(text)], strict=True):
        sentence = text[begin:end].strip()
        first = FIRST_WORD.search(sentence)
        if first and first.group(0)[0].islower() and first.group(0).islower():
            before = text[:begin].split()[-1:]  # the word the previous sentence ended with
            if not before or f"{before[0]} {first.group(0)}".lower() not in own:
                reasons.append(f"form: a sentence starts in lower case ({sentence!r})")
        elif sentence and not OPENING.match(sentence):
            reasons.append(f"form: a sentence starts with punctuation ({sentence!r})")
    hanging = [m.group(0) for m in HANGING_HYPHEN.finditer(text) if f"{m.group(0).lower()} " not in f"{own} "]
    reasons += [f"form: a word ends in a hanging hyphen ('{word}')" for word in hanging]
    if text and (not ends or ends[-1] != len(text)):
        reasons.append(f"form: stops mid-sentence ('…{text[-30:]}')")
    return reasons


def whole_sentences(text: str) -> str:
    """``text`` up to the end of its last whole sentence (all of it when it has none): what a
    generator keeps of a continuation the token limit cut mid-sentence."""
    ends = [m.end() for m in SENTENCE_END.finditer(text)]
    return text[: ends[-1]] if ends else text


def _own_text(product: Any) -> str:
    """What the catalogue itself says of the product (its category, title and description), lower case."""
    return f"{product.category} {product.title} {product.description}".lower()


def _names(rest: str, own: str, product: Any, catalogue: Catalogue) -> list[str]:
    """The product, brand, category and attribute rules on the text without the product's title."""
    reasons = [
        f"product: names {item_id} ({title!r}), not the featured {product.item_id}"
        for title, item_id in catalogue.titles.items()
        if item_id != product.item_id and title in rest
    ]
    return reasons + [reason for _, pattern, reason in _refused(product, own, catalogue) if pattern.search(rest)]


def _refused(product: Any, own: str, catalogue: Catalogue) -> list[tuple[str, re.Pattern[str], str]]:
    """(word, its pattern, the reason if written) of every catalogue word a variant for
    ``product`` may not use: other brands, words naming other categories (unless the product's
    own text ``own`` uses them), other values of its attributes (likewise)."""
    own_brand = str(product.brand).lower()
    out = [
        (brand, pattern, f"brand: names {brand!r}, not the product's brand {product.brand!r}")
        for brand, pattern in catalogue.brands.items()
        if brand != own_brand and brand not in own_brand
    ]
    out += [
        (word, pattern, f"category: {word!r} names {leaf!r}, but the product is in {product.category!r}")
        for word, (leaf, pattern) in catalogue.categories.items()
        if leaf != product.category and not pattern.search(own)
    ]
    stated = {k: str(v).lower() for k, v in product.attributes.items()}
    for key, values in catalogue.attributes.items():
        known = f"the catalogue's is {stated[key]!r}" if key in stated else "the catalogue states none"
        out += [
            (value, pattern, f"attribute: says {key} {value!r}, {known}")
            for value, pattern in values.items()
            if value != stated.get(key) and not pattern.search(own)
        ]
    return out


def _amounts(low: str, own: str, offer: Offer) -> list[str]:
    """The price, discount and number rules."""
    reasons = []
    allowed = [float(offer.product.price)] + ([offer.sale_price] if offer.sale_price is not None else [])
    for match in PRICE.finditer(low):
        value = float(next(g for g in match.groups() if g).replace(",", "."))
        if all(abs(value - a) > 0.005 for a in allowed):
            reasons.append(
                f"price: {value:.2f} is not the catalogue price {allowed[0]:.2f}"
                + (f" nor the campaign price {allowed[1]:.2f}" if len(allowed) > 1 else "")
            )
    for match in PERCENT.finditer(low):
        value = float(match.group(1).replace(",", "."))
        if offer.discount_percent is None:
            reasons.append(f"discount: {value:g}% offered, but the campaign gives no discount")
        elif abs(value - offer.discount_percent) > 1e-9:
            reasons.append(f"discount: {value:g}% is not the campaign's {offer.discount_percent:g}%")
    stated = set(NUMBER.findall(own)) | {f"{a:.2f}" for a in allowed}
    if offer.discount_percent is not None:
        stated.add(f"{offer.discount_percent:g}")
    unknown = [n for n in NUMBER.findall(PRICE.sub(" ", PERCENT.sub(" ", low))) if n not in stated]
    reasons += [f"number: {n} is not in the catalogue's text of the product" for n in dict.fromkeys(unknown)]
    return reasons


def off_limits(offer: Offer, catalogue: Catalogue) -> list[str]:
    """The catalogue words a variant for ``offer`` may not use (the words behind the brand,
    category and attribute rules): what the generator is kept from writing; ``check`` still
    reads everything."""
    product = offer.product
    own = _own_text(product)
    return sorted({word for word, _, _ in _refused(product, own, catalogue)})


def rule(reason: str) -> str:
    """The rule a reason names (``"price: ..."`` -> ``"price"``)."""
    return reason.split(":", 1)[0]
