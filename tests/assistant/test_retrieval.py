"""The champion's part of the assistant's ranking: scores mapped onto the catalogue, and each
allowed item's place among the allowed ones."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from ml.assistant.retrieval import champion_scores, rank_share
from ml.recommend.linear import EASE

pytestmark = pytest.mark.unit


def test_rank_share_places_the_allowed_items_between_0_and_1():
    values = np.array([5.0, 1.0, np.nan, 3.0, 9.0])
    mask = np.array([True, True, True, True, False])
    assert rank_share(values, mask).tolist() == [1.0, 0.0, 0.0, 0.5, 0.0]  # NaN and not allowed: 0
    assert rank_share(values, np.array([True, False, False, False, False])).tolist() == [0.0] * 5


def test_champion_scores_follow_the_models_columns_and_mark_unknown_items():
    X = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 1, 1, 1]], dtype=np.float64))
    model = EASE(l2=1.0).fit(X)
    want = model.scores(sp.csr_matrix(np.array([[1.0, 0, 0, 0]])), np.array([0]))[0]
    # the catalogue lists the model's items in another order, and one item the model never saw
    columns = np.array([3, 2, -1, 1, 0])
    rows, weights = np.array([4]), np.array([1.0])  # catalogue row 4 is the model's column 0
    got = champion_scores(model, rows, weights, columns)
    assert np.isnan(got[2]) and np.allclose(got[[0, 1, 3, 4]], want[[3, 2, 1, 0]])
    assert got[3] > got[0]  # item 1 goes with item 0 in the data, item 3 does not
