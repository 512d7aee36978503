"""Build the fit context (events, item/user features, categories) from plain frames.

These helpers turn warehouse or benchmark frames into the arrays models take, aligned with an
:class:`~ml.recommend.base.InteractionData` id space. Unknown ids are dropped; missing values
become an explicit ``<missing>`` level (categorical) or the column median (numeric), never an
error, because feature tables may lag behind the interaction data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ml.recommend.context import events_frame

MISSING = "<missing>"


def events_context(
    df: pd.DataFrame,
    user_index: dict[Any, int],
    item_index: dict[Any, int],
    time_col: str,
    user_col: str = "user_id",
    item_col: str = "item_id",
) -> pd.DataFrame:
    """Events (row, col, ts seconds) for the rows of ``df`` whose user and item are indexed."""
    rows = _lookup(df[user_col], user_index)
    cols = _lookup(df[item_col], item_index)
    ok = (rows >= 0) & (cols >= 0)
    t = df.loc[ok, time_col]
    if pd.api.types.is_datetime64_any_dtype(t):
        ts = (t - pd.Timestamp(0, tz=t.dt.tz)).dt.total_seconds().to_numpy()
    else:
        ts = pd.to_numeric(t).to_numpy(np.float64)
    return events_frame(rows[ok], cols[ok], ts)


def _lookup(values: pd.Series, index: dict[Any, int]) -> np.ndarray:
    """``index[v]`` for every value, -1 where absent: :func:`ml.recommend.base._positions`
    finds each value's key (each distinct value looked up once), then the key's value is taken."""
    from ml.recommend.base import _positions

    keys = np.asarray(list(index), dtype=object)
    pos = np.append(np.fromiter(index.values(), dtype=np.int64, count=len(index)), -1)
    return pos[_positions(values, keys, {k: j for j, k in enumerate(keys.tolist())})]  # -1 picks the appended -1


def _aligned(frame: pd.DataFrame, key: str, ids: np.ndarray) -> pd.DataFrame:
    f = frame.drop_duplicates(key).set_index(frame.drop_duplicates(key)[key].astype(str))
    return f.reindex(pd.Index(np.asarray(ids).astype(str)))


def item_feature_matrix(
    items: pd.DataFrame,
    item_ids: np.ndarray,
    categorical: Sequence[str] = (),
    multi_valued: dict[str, str] | None = None,
    weights: pd.DataFrame | None = None,
    key: str = "item_id",
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Sparse (n_items, n_features) one-hot features and their names ``column=value``.

    ``categorical``: one level per item; ``multi_valued``: {column: separator} for lists such
    as genres; ``weights``: optional long frame (item_id, tag, score) — e.g. ``ml.item_tags`` —
    added as ``tag=<tag>`` features with their scores."""
    aligned = _aligned(items, key, item_ids)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    names: list[str] = []
    vocab: dict[str, int] = {}

    def add(row_idx: np.ndarray, labels: Sequence[str], values: np.ndarray) -> None:
        for lab in labels:
            if lab not in vocab:
                vocab[lab] = len(names)
                names.append(lab)
        rows.append(row_idx)
        cols.append(np.array([vocab[lab] for lab in labels], dtype=np.int64))
        vals.append(values)

    n = len(item_ids)
    for col in categorical:
        if col not in aligned:
            continue
        labels = [f"{col}={v}" for v in aligned[col].astype("string").fillna(MISSING)]
        add(np.arange(n), labels, np.ones(n, np.float32))
    for col, sep in (multi_valued or {}).items():
        if col not in aligned:
            continue
        parts = aligned[col].astype("string").fillna("").str.split(sep)
        r = np.repeat(np.arange(n), parts.map(len).to_numpy())
        labels = [f"{col}={v}" if v else f"{col}={MISSING}" for vs in parts for v in vs]
        add(r, labels, np.ones(len(labels), np.float32))
    if weights is not None and len(weights):
        index = {str(i): j for j, i in enumerate(item_ids)}
        w = weights[weights[key].astype(str).isin(index)]
        add(
            w[key].astype(str).map(index).to_numpy(np.int64),
            [f"tag={t}" for t in w["tag"].astype(str)],
            w["score"].to_numpy(np.float32) if "score" in w else np.ones(len(w), np.float32),
        )
    if not names:
        return sp.csr_matrix((n, 0), dtype=np.float32), np.array([], dtype=object)
    F = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, len(names)), dtype=np.float32
    )
    F.sum_duplicates()
    return F, np.asarray(names, dtype=object)


def user_feature_matrix(
    users: pd.DataFrame,
    user_ids: np.ndarray,
    numeric: Sequence[str] = (),
    categorical: Sequence[str] = (),
    key: str = "user_id",
    max_levels: int = 50,
) -> np.ndarray:
    """Dense (n_users, d) float32 features: standardised numeric columns and one-hot
    categorical columns (the ``max_levels`` most frequent levels; the rest share one column)."""
    aligned = _aligned(users, key, user_ids)
    blocks: list[np.ndarray] = []
    for col in numeric:
        if col not in aligned:
            continue
        v = pd.to_numeric(aligned[col], errors="coerce").astype(float)
        v = v.fillna(v.median() if v.notna().any() else 0.0).to_numpy()
        blocks.append(((v - v.mean()) / (v.std() + 1e-9))[:, None])
    for col in categorical:
        if col not in aligned:
            continue
        v = aligned[col].astype("string").fillna(MISSING)
        top = v.value_counts().index[:max_levels]
        v = v.where(v.isin(top), "<other>")
        blocks.append(pd.get_dummies(v).to_numpy(np.float32))
    if not blocks:
        return np.zeros((len(user_ids), 0), np.float32)
    return np.hstack(blocks).astype(np.float32)


def item_category_codes(items: pd.DataFrame, item_ids: np.ndarray, column: str, key: str = "item_id") -> np.ndarray:
    """(n_items,) int codes of one categorical column (e.g. the leaf category); -1 if unknown."""
    aligned = _aligned(items, key, item_ids)
    if column not in aligned:
        return np.full(len(item_ids), -1, dtype=np.int64)
    codes, _ = pd.factorize(aligned[column].astype("string"), use_na_sentinel=True)
    return np.asarray(codes, dtype=np.int64)
