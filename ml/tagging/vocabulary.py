"""The tag vocabulary (dbt seed ``reference.tag_vocabulary``) and its tag graph."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd

from ml.tagging.defaults import TAGGABLE_KINDS
from ml.warehouse import Warehouse

TAG = "tag"
KIND = "kind"
PARENT = "parent"
DESCRIPTION = "description"
VOCABULARY_VERSION = "vocabulary_version"
COLUMNS = (TAG, KIND, PARENT, DESCRIPTION, VOCABULARY_VERSION)


@dataclass(frozen=True)
class Vocabulary:
    """Tags with their kind, parent (the tag graph's edge) and one-line description."""

    frame: pd.DataFrame
    kinds: dict[str, str] = field(init=False)
    parents: dict[str, str] = field(init=False)
    descriptions: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        missing = [c for c in (TAG, KIND, DESCRIPTION) if c not in self.frame]
        if missing:
            raise ValueError(f"tag vocabulary lacks columns {missing}")
        dup = self.frame[TAG][self.frame[TAG].duplicated()].tolist()
        if dup:
            raise ValueError(f"tag vocabulary repeats tags {dup[:5]}")
        f = self.frame.fillna({PARENT: "", DESCRIPTION: ""})
        object.__setattr__(self, "kinds", dict(zip(f[TAG], f[KIND], strict=True)))
        parents = dict(zip(f[TAG], f[PARENT], strict=True)) if PARENT in f else {}
        object.__setattr__(self, "parents", {t: p for t, p in parents.items() if p})
        object.__setattr__(self, "descriptions", dict(zip(f[TAG], f[DESCRIPTION], strict=True)))

    @classmethod
    def from_taxonomy(cls) -> Vocabulary:
        """The synthetic shop's vocabulary, straight from ``ml/shop/taxonomy.py``."""
        from ml.shop.taxonomy import VOCABULARY_VERSION as VERSION
        from ml.shop.taxonomy import vocabulary

        rows = [(t.tag, t.kind, t.parent, t.description, VERSION) for t in vocabulary()]
        return cls(pd.DataFrame(rows, columns=list(COLUMNS)))

    @classmethod
    def from_warehouse(cls, wh: Warehouse) -> Vocabulary:
        """The seed ``reference.tag_vocabulary`` (built by dbt)."""
        with wh.connect(read_only=True) as con:
            if not wh.table_exists(con, "reference", "tag_vocabulary"):
                raise LookupError("reference.tag_vocabulary is missing: run build_features (dbt seed) first")
            df = wh.query(f"select {', '.join(COLUMNS)} from reference.tag_vocabulary", None, con)
        return cls(df)

    @property
    def tags(self) -> list[str]:
        return list(self.kinds)

    @property
    def version(self) -> str:
        if VOCABULARY_VERSION not in self.frame or self.frame.empty:
            return "unknown"
        return str(self.frame[VOCABULARY_VERSION].max())

    def taggable(self, kinds: Iterable[str] = TAGGABLE_KINDS) -> list[str]:
        """Tags that items can carry (every kind but the department roots by default)."""
        keep = set(kinds)
        return [t for t, k in self.kinds.items() if k in keep]

    def kind(self, tag: str) -> str:
        return self.kinds.get(tag, tag.split(":", 1)[0])

    def siblings(self, tag: str) -> list[str]:
        """Tags with the same parent (adjacent in the tag graph), ``tag`` excluded."""
        p = self.parents.get(tag)
        if not p:
            return []
        return [t for t, q in self.parents.items() if q == p and t != tag]
