"""The columnar contract: every consumer reads the contexts' columns, and what it reads there
is what the contexts give one by one (the oracles of ``tests/explore/oracles.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from ml.explore.candidates import CandidateSettings, build_contexts
from ml.explore.context import ContextList
from ml.explore.policies import POLICIES, make_policy
from tests.explore.test_candidates import _random_inputs

pytestmark = pytest.mark.unit


def _contexts(seed: int) -> ContextList:
    inp = _random_inputs(seed)
    users = sorted(set(inp.profiles["user_id"]) | set(inp.champion["user_id"]))
    return build_contexts(inp, users, CandidateSettings(items_per_tag=4, slate_size=10))


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_greedy_values_from_the_columns_equal_each_contexts_own(name):
    """The campaign re-rank values boosted items with ``exploit_columns``; it is exactly
    ``exploit_values`` of every context, arm by arm."""
    contexts = _contexts(1)
    pol = make_policy(name)
    per_context = np.concatenate([pol.exploit_values(c) for c in contexts])
    np.testing.assert_array_equal(pol.exploit_columns(contexts.columns), per_context)


def test_hand_made_contexts_as_columns_are_the_same_contexts():
    """``ContextList.of`` turns contexts made one by one into the columns every consumer reads:
    each context's JSON from the columns is its own, and reading a context gives it back."""
    made = list(_contexts(2))
    wrapped = ContextList.of(made)
    assert wrapped.columns.to_json_rows() == [c.to_json() for c in made]
    assert [c.user_id for c in wrapped] == [c.user_id for c in made] and wrapped[3] is made[3]
    assert ContextList.of(wrapped) is wrapped
    empty = ContextList.of([])
    assert len(empty) == 0 and empty.columns.to_json_rows() == []
