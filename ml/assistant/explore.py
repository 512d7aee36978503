"""The assistant's one exploration slot, with exact propensities.

Slots 1..k-1 show the ranking (propensity 1). The last slot shows, with probability ``share``,
the best-scoring item that meets the question and belongs to one of the user's *candidate*
interests (``ml.user_interest_profiles``) instead of the ranking's k-th item; the shown item's
propensity is ``share`` if it explores, ``1 - share`` if not. Without such an item, or with
``share`` 0, the answer is the ranking with propensity 1 everywhere. The coin is drawn from a
generator the caller seeds with the answer's ``recommendation_id``, so a logged answer can be
replayed.
"""

from __future__ import annotations

import numpy as np


def explore_last_slot(
    ranked: np.ndarray,
    scores: np.ndarray,
    mask: np.ndarray,
    item_tags: np.ndarray,
    candidate_tags: set[str],
    share: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(shown item rows, propensity per slot, is_exploration per slot) for a ranking ``ranked``."""
    k = len(ranked)
    shown = np.asarray(ranked, dtype=np.int64).copy()
    propensity = np.ones(k)
    exploring = np.zeros(k, dtype=bool)
    if k == 0 or share <= 0 or not candidate_tags:
        return shown, propensity, exploring
    pool = mask & np.isin(item_tags, list(candidate_tags)) & ~np.isin(np.arange(len(scores)), shown)
    if not pool.any():
        return shown, propensity, exploring
    if rng.random() < share:
        shown[-1] = int(np.argmax(np.where(pool, scores, -np.inf)))
        propensity[-1] = share
        exploring[-1] = True
    else:
        propensity[-1] = 1.0 - share
    return shown, propensity, exploring
