"""Reading a shopper's question: hard constraints out, free text left for retrieval.

Constraints understood (English): price bounds ("under 120", "below $80", "over 50", "from 30",
"between 40 and 90", "40-90 eur"), colours, brands, categories (leaf names such as "tents",
singular or plural) and styles, each matched against the catalogue's own vocabulary
(:class:`Vocabulary`). Everything else is free text. A question that cannot be answered raises
:class:`QuestionError` with the HTTP status a caller should return and a reason a person can act
on: empty, too long, contradictory bounds, or no word the catalogue knows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:  # the UI plugin imports QuestionError at start-up: no pandas import here
    import pandas as pd

MAX_CHARS = 500
WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
NUMBER = r"(\d+(?:[.,]\d{1,2})?)"
CURRENCY = r"(?:\s*(?:\$|€|£|eur|euros?|usd|dollars?|gbp|pounds?))?"
BETWEEN = re.compile(rf"(?:between\s+)?[$€£]?{NUMBER}{CURRENCY}\s*(?:-|–|to|and)\s*[$€£]?{NUMBER}{CURRENCY}")
UPPER = re.compile(rf"(?:under|below|less than|cheaper than|up to|at most|max(?:imum)?|<=?)\s*[$€£]?{NUMBER}{CURRENCY}")
LOWER = re.compile(rf"(?:over|above|more than|at least|from|min(?:imum)?|>=?)\s*[$€£]?{NUMBER}{CURRENCY}")


SINGULAR = {"colours": "colour", "brands": "brand", "categories": "category", "styles": "style"}


class QuestionError(ValueError):
    """A question the assistant cannot answer; ``status`` is the HTTP status to return."""

    def __init__(self, reason: str, status: int = 400):
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class Vocabulary:
    """Lower-case catalogue words the parser matches: colours, brands, leaf categories, styles,
    and every word of the catalogue text (to tell "no known word" from a real question)."""

    colours: frozenset[str]
    brands: frozenset[str]
    categories: dict[str, str]  # singular/plural word -> the leaf's category name as written
    styles: frozenset[str]
    words: frozenset[str]

    @classmethod
    def from_items(cls, items: pd.DataFrame, texts: list[str], styles: tuple[str, ...] = ()) -> Vocabulary:
        """From a catalogue frame (``category_path``, ``brand``, optional ``colour``) and its texts."""
        leaves = items["category_path"].astype(str).str.split(" > ").str[-1].str.strip()
        categories: dict[str, str] = {}
        for leaf in leaves.unique():
            low = leaf.lower()
            categories[low] = leaf
            categories[low[:-1] if low.endswith("s") else low + "s"] = leaf
        colours = frozenset(items["colour"].dropna().astype(str).str.lower()) if "colour" in items else frozenset()
        brands = frozenset(items["brand"].dropna().astype(str).str.lower())
        words = frozenset(w for t in texts for w in WORD.findall(t.lower())) | frozenset(categories)
        return cls(colours, brands, categories, frozenset(s.lower() for s in styles), words)


@dataclass(frozen=True)
class Question:
    """A parsed question: the free text and the hard constraints (``None``/empty: no constraint)."""

    text: str
    min_price: float | None = None
    max_price: float | None = None
    colours: tuple[str, ...] = ()
    brands: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    styles: tuple[str, ...] = ()
    constraints: tuple[str, ...] = field(default=())  # what was understood, as a person would say it

    KINDS: ClassVar[tuple[str, ...]] = ("colours", "brands", "categories", "styles")


def parse(question: object, vocabulary: Vocabulary) -> Question:
    """The :class:`Question` in ``question``; raises :class:`QuestionError` (module docstring)."""
    if not isinstance(question, str) or not question.strip():
        raise QuestionError("the question is empty: ask for something, e.g. 'waterproof hiking boots under 120'")
    if len(question) > MAX_CHARS:
        raise QuestionError(f"the question is {len(question):,} characters long; at most {MAX_CHARS} are read", 413)
    low = " ".join(question.lower().split())
    low, lo, hi = _prices(low)
    if lo is not None and hi is not None and lo > hi:
        raise QuestionError(f"the price bounds contradict each other: at least {lo:g} and at most {hi:g}", 422)
    words = WORD.findall(low)
    found: dict[str, list[str]] = {k: [] for k in Question.KINDS}
    rest: list[str] = []
    for w in words:
        if w in vocabulary.colours:
            found["colours"].append(w)
        elif w in vocabulary.brands:
            found["brands"].append(w)
        elif w in vocabulary.categories:
            found["categories"].append(vocabulary.categories[w])
        elif w in vocabulary.styles:
            found["styles"].append(w)
        else:
            rest.append(w)
    known = any(found.values()) or any(w in vocabulary.words for w in rest)
    if not known and lo is None and hi is None:
        raise QuestionError(
            "no word of the question matches the catalogue (the assistant reads English product words, "
            "e.g. 'tents', 'leather boots', 'under 50')",
            422,
        )
    said = []
    if lo is not None:
        said.append(f"price at least {lo:g}")
    if hi is not None:
        said.append(f"price at most {hi:g}")
    for kind in Question.KINDS:
        said += [f"{SINGULAR[kind]} {v}" for v in dict.fromkeys(found[kind])]
    return Question(
        text=" ".join(rest) or " ".join(words),
        min_price=lo,
        max_price=hi,
        colours=tuple(dict.fromkeys(found["colours"])),
        brands=tuple(dict.fromkeys(found["brands"])),
        categories=tuple(dict.fromkeys(found["categories"])),
        styles=tuple(dict.fromkeys(found["styles"])),
        constraints=tuple(said),
    )


def _number(text: str) -> float:
    return float(text.replace(",", "."))


def _prices(low: str) -> tuple[str, float | None, float | None]:
    """(the question without its price phrases, lower bound, upper bound)."""
    lo = hi = None
    m = BETWEEN.search(low)
    if m and (m.group(0).startswith("between") or "-" in m.group(0) or "–" in m.group(0)):
        lo, hi = _number(m.group(1)), _number(m.group(2))
        low = low.replace(m.group(0), " ")
    m = UPPER.search(low)
    if m:
        hi = _number(m.group(1)) if hi is None else min(hi, _number(m.group(1)))
        low = low.replace(m.group(0), " ")
    m = LOWER.search(low)
    if m:
        lo = _number(m.group(1)) if lo is None else max(lo, _number(m.group(1)))
        low = low.replace(m.group(0), " ")
    return low, lo, hi
