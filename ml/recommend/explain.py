"""Why the champion recommender proposes an item to a user, for the rows that are shown."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ml.explore import columns as C
from ml.frames import member


class ChampionReasons:
    """Why the champion proposes an item to a user: ``similar to '<history item>' you interacted
    with`` (the history item with the largest contribution) or ``popular in <category>``.

    Holds what ``score_users`` computed (model, interaction matrix, user and item order, the
    candidate matrix and its popularity-filled slots) so explanations can be computed for just
    the rows that are shown."""

    def __init__(
        self,
        model: Any,
        X: Any,
        users: np.ndarray,
        item_ids: np.ndarray,
        item_features: pd.DataFrame,
        candidates: np.ndarray,
        filled: np.ndarray,
    ):
        self.model, self.X, self.users, self.item_ids = model, X, users, item_ids
        title = dict(zip(item_features["item_id"], item_features["title"], strict=True))
        cat = dict(zip(item_features["item_id"], item_features["category_path"], strict=True))
        names = item_ids.tolist()
        self.similar_text = np.array([f"similar to '{title.get(i, i)}' you interacted with" for i in names], object)
        self.popular_text = np.array([f"popular in {cat.get(i, 'the shop')}" for i in names], object)
        self.source_tag = np.array([f"item:{i}" for i in names], dtype=object)
        n = len(item_ids)
        rows = np.repeat(np.arange(candidates.shape[0], dtype=np.int64), candidates.shape[1])
        keys = rows * n + candidates.ravel()
        ok = candidates.ravel() >= 0
        self._candidate_keys = np.sort(keys[ok])
        self._filled_keys = np.sort(keys[filled.ravel() & ok])
        self._item_index = pd.Index(item_ids)
        self._user_index = pd.Index(users)

    def _sources(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        """Source history item per (user row, item index) pair, -1 for popular."""
        if len(u) == 0:
            return np.zeros(0, dtype=np.int64)
        explain = getattr(self.model, "explain_sources", None)
        if explain is not None:
            src = np.asarray(explain(self.X, u, i[:, None]), dtype=np.int64)[:, 0]
        else:
            rs = self.model.explain(self.X, u, i[:, None])
            src = np.array([r[0]["item"] if r[0].get("kind") == "similar_item" else -1 for r in rs], dtype=np.int64)
        key = u * len(self.item_ids) + i
        src[np.isin(key, self._filled_keys)] = -1
        return src

    def for_slots(self, u: np.ndarray, i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(reason, reason_tag) for user rows ``u`` and item indices ``i`` (champion candidates)."""
        src = self._sources(np.asarray(u, dtype=np.int64), np.asarray(i, dtype=np.int64))
        similar = src >= 0
        reason = np.where(similar, self.similar_text[np.maximum(src, 0)], self.popular_text[i])
        tag = np.where(similar, self.source_tag[np.maximum(src, 0)], "popular")
        return reason, tag

    def fill(self, slates: pd.DataFrame) -> pd.DataFrame:
        """Published rows with the champion's reason on every non-exploration row whose item is
        one of the user's champion candidates (what ``build_slates`` does with eager reasons)."""
        u = self._user_index.get_indexer(slates["user_id"])  # (a hash lookup per row, not a binary search)
        known_user = u >= 0
        u = np.maximum(u, 0)
        i = self._item_index.get_indexer(slates["item_id"])
        key = u.astype(np.int64) * len(self.item_ids) + i
        ck = self._candidate_keys
        if len(ck) == 0 or len(slates) == 0:
            return slates
        is_candidate = known_user & (i >= 0) & member(key, ck)[0]
        mask = is_candidate & ~slates[C.IS_EXPLORATION].to_numpy(dtype=bool)
        if not mask.any():
            return slates
        reason, _ = self.for_slots(u[mask], i[mask])
        out = slates.copy()
        out.loc[mask, "reason"] = reason
        return out
