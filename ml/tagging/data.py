"""Training data for taggers: the catalogue text, merchandiser labels and a stable split.

Labels live in ``ml.tag_labels(item_id, tag, source_file, loaded_at)``; they are loaded from a
file (CSV, JSON Lines or Parquet with columns ``item_id, tag``) by :func:`import_labels`, which
checks every row against the catalogue and the vocabulary and rejects the whole file, naming
file, row and rule, when one is bad. The split is a hash of the item id, so every candidate and
every later gate sees the same held-out items.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.tagging.store import LABELS, ensure_tables
from ml.tagging.text import ATTRIBUTES, CREATED_AT, DESCRIPTION, ITEM_ID, TITLE, item_texts
from ml.tagging.vocabulary import TAG, Vocabulary
from ml.warehouse import Warehouse

CATALOG = "staging.stg_shop__items"


class LabelFileError(ValueError):
    """A label file that cannot be loaded; the message names the file, row and rule."""


def load_catalog(wh: Warehouse) -> pd.DataFrame:
    """The current catalogue (one row per item): id, title, description, attributes, created_at."""
    with wh.connect(read_only=True) as con:
        if not wh.table_exists(con, "staging", "stg_shop__items"):
            raise LookupError(f"{CATALOG} is missing: run ingest_events and build_features first")
        df = wh.query(
            f"select {ITEM_ID}, {TITLE}, {DESCRIPTION}, cast({ATTRIBUTES} as varchar) as {ATTRIBUTES}, "
            f"{CREATED_AT} from {CATALOG} order by {ITEM_ID}",
            None,
            con,
        )
    df[CREATED_AT] = pd.to_datetime(df[CREATED_AT])
    return df


def load_labels(wh: Warehouse) -> pd.DataFrame:
    """All labels as (item_id, tag) rows; empty when none were loaded."""
    with wh.connect(read_only=True) as con:
        if not wh.table_exists(con, "ml", "tag_labels"):
            return pd.DataFrame({ITEM_ID: pd.Series(dtype=object), TAG: pd.Series(dtype=object)})
        return wh.query(f"select {ITEM_ID}, {TAG} from {LABELS} order by {ITEM_ID}, {TAG}", None, con)


def unit_hash(keys: pd.Series | list[str], salt: str) -> np.ndarray:
    """A stable pseudo-random number in [0, 1) per key (sha1 of ``key|salt``)."""
    return np.array([int(hashlib.sha1(f"{k}|{salt}".encode()).hexdigest()[:8], 16) / 2**32 for k in keys])


def is_test_item(item_ids: pd.Series | list[str], test_share: float, seed: int = 0) -> np.ndarray:
    """Boolean mask of held-out items: the same ids always land on the same side."""
    return unit_hash(item_ids, f"tagger-split-{seed}") < test_share


def read_label_file(path: Path) -> pd.DataFrame:
    """A label file as a frame of strings with its 1-based data row numbers in ``_row``."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            df = pd.read_parquet(path)
        elif suffix == ".csv":
            df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        elif suffix in (".jsonl", ".json"):
            df = pd.read_json(path, lines=True, dtype=False)
        else:
            raise LabelFileError(f"{path}: unsupported label file type {suffix!r} (use .csv, .jsonl or .parquet)")
    except LabelFileError:
        raise
    except Exception as exc:
        raise LabelFileError(f"{path}: unreadable label file ({exc})") from exc
    missing = [c for c in (ITEM_ID, TAG) if c not in df]
    if missing:
        raise LabelFileError(f"{path}: missing required columns {missing} (rule: columns item_id, tag)")
    df = df[[ITEM_ID, TAG]].copy()
    df["_row"] = np.arange(1, len(df) + 1)
    return df


def validate_labels(df: pd.DataFrame, path: Path, catalog_ids: set[str], vocabulary: Vocabulary) -> pd.DataFrame:
    """Check every row; raise :class:`LabelFileError` listing the first bad rows and their rule."""
    problems: list[str] = []
    taggable = set(vocabulary.taggable())
    for row, item, tag in zip(df["_row"], df[ITEM_ID], df[TAG], strict=True):
        if item is None or (isinstance(item, float) and np.isnan(item)) or str(item).strip() == "":
            problems.append(f"row {row}: item_id is empty (rule: required)")
        elif str(item) not in catalog_ids:
            problems.append(f"row {row}: item_id {item!r} is not in the catalogue (rule: known_item)")
        if tag is None or (isinstance(tag, float) and np.isnan(tag)) or str(tag).strip() == "":
            problems.append(f"row {row}: tag is empty (rule: required)")
        elif str(tag) not in taggable:
            problems.append(f"row {row}: tag {tag!r} is not an item tag of reference.tag_vocabulary (rule: known_tag)")
    if problems:
        more = f" … and {len(problems) - 5} more" if len(problems) > 5 else ""
        raise LabelFileError(f"{path}: {len(problems)} bad label rows: " + "; ".join(problems[:5]) + more)
    return df.assign(**{ITEM_ID: df[ITEM_ID].astype(str), TAG: df[TAG].astype(str)})


def import_labels(
    path: Path | str,
    wh: Warehouse,
    vocabulary: Vocabulary | None = None,
    fraction: float = 1.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Load a label file into ``ml.tag_labels``; the labels of every item in the file replace
    that item's earlier labels (re-loading a file is a no-op). ``fraction`` < 1 keeps the labels
    of a stable, hash-chosen share of the items (a partly labelled catalogue)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    path = Path(path)
    vocabulary = vocabulary or Vocabulary.from_warehouse(wh)
    catalog_ids = set(load_catalog(wh)[ITEM_ID])
    df = validate_labels(read_label_file(path), path, catalog_ids, vocabulary)
    rows = len(df)
    df = df.drop_duplicates([ITEM_ID, TAG])
    if fraction < 1.0:
        df = df[unit_hash(df[ITEM_ID], f"label-fraction-{seed}") < fraction]
    out = df[[ITEM_ID, TAG]].assign(source_file=str(path), loaded_at=datetime.now(UTC))
    with wh.connect() as con:
        ensure_tables(wh, con)
        wh.begin(con)
        items = out[[ITEM_ID]].drop_duplicates()
        if len(items):
            wh.execute(con, "create temporary table _label_items (item_id varchar)")
            wh.append_df(con, "_label_items", items)
            wh.execute(con, f"delete from {LABELS} where {ITEM_ID} in (select {ITEM_ID} from _label_items)")
            wh.execute(con, "drop table _label_items")
        wh.append_df(con, LABELS, out)
        wh.commit(con)
    return {
        "file": str(path),
        "rows": rows,
        "labels": len(out),
        "items": int(out[ITEM_ID].nunique()),
        "tags": int(out[TAG].nunique()),
    }


@dataclass(frozen=True)
class TrainingSet:
    """Labelled items with their text, split into train and held-out test (stable hash)."""

    item_ids: list[str]
    texts: list[str]
    labels: list[list[str]]
    is_test: np.ndarray
    learnable_tags: list[str]
    zero_shot_tags: list[str]

    def part(self, test: bool) -> tuple[list[str], list[list[str]], list[str]]:
        """(texts, labels, item_ids) of the train (``test=False``) or held-out part."""
        idx = np.flatnonzero(self.is_test == test)
        return [self.texts[i] for i in idx], [self.labels[i] for i in idx], [self.item_ids[i] for i in idx]

    def summary(self) -> dict[str, Any]:
        return {
            "labelled_items": len(self.item_ids),
            "train_items": int((~self.is_test).sum()),
            "test_items": int(self.is_test.sum()),
            "learnable_tags": len(self.learnable_tags),
            "zero_shot_tags": self.zero_shot_tags,
        }


def training_set(
    catalog: pd.DataFrame,
    labels: pd.DataFrame,
    vocabulary: Vocabulary,
    min_labels: int,
    test_share: float,
    seed: int = 0,
) -> TrainingSet:
    """Labelled catalogue items; tags with fewer than ``min_labels`` labelled *training* items are
    not learnable (zero-shot assigns them) and are dropped from the label lists."""
    lab = labels[labels[TAG].isin(vocabulary.taggable())]
    items = catalog[catalog[ITEM_ID].isin(lab[ITEM_ID])].sort_values(ITEM_ID).reset_index(drop=True)
    test = is_test_item(items[ITEM_ID], test_share, seed)
    train_ids = set(items.loc[~test, ITEM_ID])
    counts = lab[lab[ITEM_ID].isin(train_ids)].groupby(TAG)[ITEM_ID].nunique()
    learnable = sorted(counts[counts >= min_labels].index)
    zero_shot = sorted(set(vocabulary.taggable()) - set(learnable))
    keep = set(learnable)
    per_item = lab[lab[TAG].isin(keep)].groupby(ITEM_ID)[TAG].apply(sorted).to_dict()
    return TrainingSet(
        item_ids=items[ITEM_ID].tolist(),
        texts=item_texts(items),
        labels=[per_item.get(i, []) for i in items[ITEM_ID]],
        is_test=test,
        learnable_tags=learnable,
        zero_shot_tags=zero_shot,
    )
