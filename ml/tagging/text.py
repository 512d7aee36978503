"""The text a tagger reads: an item's title, description and attributes as one string."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pandas as pd

ITEM_ID = "item_id"
TITLE = "title"
DESCRIPTION = "description"
ATTRIBUTES = "attributes"
CREATED_AT = "created_at"
TEXT_COLUMNS = (TITLE, DESCRIPTION, ATTRIBUTES)


def _attributes_text(value: Any) -> str:
    """``{"color": "navy", "material": "wool"}`` -> ``"color navy, material wool"``."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    data = value
    if isinstance(value, str):
        try:
            data = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError:
            return value
    if isinstance(data, Mapping):
        return ", ".join(f"{k} {v}" for k, v in data.items() if v not in (None, ""))
    return str(data)


def item_text(title: Any, description: Any = None, attributes: Any = None) -> str:
    """One item's tagger input: ``"<title>. <description> <attributes>"`` (missing parts skipped)."""
    parts = [str(p).strip() for p in (title, description) if isinstance(p, str) and p.strip()]
    attrs = _attributes_text(attributes)
    if attrs:
        parts.append(attrs)
    return ". ".join(parts)


def item_texts(items: pd.DataFrame) -> list[str]:
    """Tagger inputs for a catalogue frame with ``title`` and optional ``description``/``attributes``."""
    desc = items[DESCRIPTION] if DESCRIPTION in items else pd.Series([None] * len(items), index=items.index)
    attrs = items[ATTRIBUTES] if ATTRIBUTES in items else pd.Series([None] * len(items), index=items.index)
    return [item_text(t, d, a) for t, d, a in zip(items[TITLE], desc, attrs, strict=True)]
