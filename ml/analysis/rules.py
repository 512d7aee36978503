"""Association rules between categories: which leaf categories go together in a session basket.

For every ordered pair of categories (A -> B) seen together in at least ``min_support`` of the
baskets: support = P(A and B), confidence = P(B | A), lift = confidence / P(B).
Pairs only (one antecedent, one consequent): counts come from one sparse product BᵀB.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

RULE_COLUMNS = ["antecedent", "consequent", "support", "confidence", "lift", "n_baskets", "antecedent_support"]


class CategoryAssociationRules:
    """Pairwise association rules over baskets of categories.

    Parameters
    ----------
    min_support: minimum share of baskets holding both categories, in [0, 1].
    min_confidence: minimum P(consequent | antecedent), in [0, 1].
    min_count: minimum number of baskets holding both (guards tiny data).

    Learned attributes: ``rules_`` (DataFrame: antecedent, consequent, support, confidence,
    lift, n_baskets, antecedent_support; sorted by lift then confidence), ``n_baskets_``,
    ``categories_``, ``item_support_`` (n_categories,).
    """

    def __init__(self, min_support: float = 0.005, min_confidence: float = 0.05, min_count: int = 3):
        self.min_support = min_support
        self.min_confidence = min_confidence
        self.min_count = min_count

    def get_params(self) -> dict[str, Any]:
        return {"min_support": self.min_support, "min_confidence": self.min_confidence, "min_count": self.min_count}

    def fit(
        self, baskets: pd.DataFrame, basket_col: str = "session_key", item_col: str = "category_path"
    ) -> CategoryAssociationRules:
        """``baskets``: one row per (basket, category); repeats are ignored."""
        pairs = baskets[[basket_col, item_col]].dropna().drop_duplicates()
        b_codes, b_uniques = pd.factorize(pairs[basket_col], sort=True)
        c_codes, c_uniques = pd.factorize(pairs[item_col], sort=True)
        n_b, n_c = len(b_uniques), len(c_uniques)
        self.n_baskets_ = n_b
        self.categories_ = np.asarray(c_uniques, dtype=object)
        if n_b == 0:
            self.item_support_ = np.zeros(0)
            self.rules_ = pd.DataFrame(columns=RULE_COLUMNS)
            return self
        B = sp.csr_matrix((np.ones(len(pairs), dtype=np.float64), (b_codes, c_codes)), shape=(n_b, n_c))
        together = (B.T @ B).tocoo()
        counts = np.asarray(B.sum(axis=0)).ravel()
        self.item_support_ = counts / n_b
        mask = (together.row != together.col) & (together.data >= self.min_count)
        a, c, n_ab = together.row[mask], together.col[mask], together.data[mask]
        support = n_ab / n_b
        confidence = n_ab / counts[a]
        lift = confidence / self.item_support_[c]
        keep = (support >= self.min_support) & (confidence >= self.min_confidence)
        rules = pd.DataFrame(
            {
                "antecedent": self.categories_[a[keep]],
                "consequent": self.categories_[c[keep]],
                "support": support[keep],
                "confidence": confidence[keep],
                "lift": lift[keep],
                "n_baskets": n_ab[keep].astype(np.int64),
                "antecedent_support": self.item_support_[a[keep]],
            }
        )
        self.rules_ = rules.sort_values(
            ["lift", "confidence", "antecedent", "consequent"], ascending=[False, False, True, True]
        ).reset_index(drop=True)
        return self
