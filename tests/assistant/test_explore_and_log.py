"""The assistant's exploration slot and its slate log."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ml.assistant.explore import explore_last_slot
from ml.explore import columns as C

TAGS = np.array(["cat:a", "cat:a", "cat:b", "cat:b", "cat:c", None], dtype=object)
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])


@pytest.mark.unit
def test_the_last_slot_explores_a_candidate_interest_with_its_exact_propensity():
    ranked = np.array([0, 1, 2])
    mask = np.ones(6, dtype=bool)
    outcomes = []
    for seed in range(400):
        shown, p, e = explore_last_slot(ranked, SCORES, mask, TAGS, {"cat:c"}, 0.25, np.random.default_rng(seed))
        assert shown[:2].tolist() == [0, 1] and p[:2].tolist() == [1.0, 1.0] and not e[:2].any()
        assert (shown[2], p[2], e[2]) in {(2, 0.75, False), (4, 0.25, True)}
        outcomes.append(bool(e[2]))
    assert 0.18 < np.mean(outcomes) < 0.32  # the coin lands as the propensity says
    # the best allowed candidate item not already shown; none allowed, none at all, or share 0: no exploration
    shown, p, e = explore_last_slot(ranked, SCORES, mask, TAGS, {"cat:b"}, 1.0, np.random.default_rng(0))
    assert shown.tolist() == [0, 1, 3] and p[2] == 1.0 and e[2]
    for cand, share, m in (({"cat:c"}, 0.5, mask & (np.arange(6) != 4)), (set(), 0.5, mask), ({"cat:c"}, 0.0, mask)):
        shown, p, e = explore_last_slot(ranked, SCORES, m, TAGS, cand, share, np.random.default_rng(0))
        assert shown.tolist() == [0, 1, 2] and p.tolist() == [1.0, 1.0, 1.0] and not e.any()


def _rows(rid: str, when: str) -> list[dict]:
    return [
        {
            C.RECOMMENDATION_ID: rid,
            C.RUN_ID: "assistant",
            "user_id": "u1",
            C.POSITION: n,
            "item_id": f"i{n}",
            C.TAG: "cat:a",
            C.POLICY: "assistant",
            C.POLICY_VERSION: "assistant-explore0.1",
            C.PROPENSITY: 1.0 if n < 2 else 0.9,
            C.PROPENSITY_SE: 0.0,
            C.IS_EXPLORATION: False,
            "score": 0.5,
            C.ARM_FEATURES: None,
            C.AS_OF: when,
        }
        for n in (1, 2)
    ]


@pytest.mark.dbt
def test_the_log_loads_each_answer_once_and_retires_past_days(tmp_path, warehouse):
    from ml.assistant.log import append, load_assistant_log

    folder = tmp_path / "log"
    today = append(_rows("AS1", "2026-12-06T10:00:00"), folder)
    past = folder / "2000-01-01.jsonl"
    past.write_text(
        "".join(json.dumps(r) + "\n" for r in _rows("AS0", "2000-01-01T09:00:00")) + '{"cut short'  # a crash mid-write
    )
    first = load_assistant_log(folder=folder)
    assert first["slates"] == 2 and first["rows"] == 4
    logged = warehouse.query(f"select * from {C.LOGGED_SLATES} order by recommendation_id, position")
    assert logged["recommendation_id"].tolist() == ["AS0", "AS0", "AS1", "AS1"]
    assert logged["propensity"].tolist() == [1.0, 0.9, 1.0, 0.9] and (logged["policy"] == "assistant").all()
    assert (folder / "done" / "2000-01-01.jsonl").exists() and not past.exists() and today.exists()
    append(_rows("AS2", "2026-12-06T11:00:00"), folder)
    again = load_assistant_log(folder=folder)
    assert again["slates"] == 1 and again["rows"] == 2  # today's file is read again: only AS2 is new
    assert load_assistant_log(folder=folder)["rows"] == 0
    assert load_assistant_log(folder=tmp_path / "nothing-here")["files"] == 0


def _answers(n: int, share: float, seed: int, ctr_exploit: float = 0.1, ctr_explore: float = 0.3):
    """Logged answers of 3 slots; a quarter have no candidate item (no coin on the last slot)."""
    rng = np.random.default_rng(seed)
    rows = []
    for a in range(n):
        coin = a % 4 != 0
        explores = coin and rng.random() < share
        for pos in (1, 2, 3):
            last = pos == 3
            p = 1.0 if not (last and coin) else (share if explores else 1 - share)
            ctr = ctr_explore if (last and explores) else ctr_exploit
            rows.append(
                {
                    C.RECOMMENDATION_ID: f"AS{a}",
                    C.POSITION: pos,
                    C.POLICY: "assistant",
                    C.HAS_PROPENSITY: True,
                    C.PROPENSITY: p,
                    C.IS_EXPLORATION: bool(last and explores),
                    C.CLICKED: int(rng.random() < ctr),
                }
            )
    import pandas as pd

    return pd.DataFrame(rows)


@pytest.mark.unit
def test_other_exploration_shares_are_estimated_from_the_assistants_own_log():
    from ml.assistant.ope import exploration_estimates, last_slots

    fb = _answers(20_000, share=0.2, seed=1)
    assert len(last_slots(fb)) == 20_000
    est = exploration_estimates(fb, shares=(0.0, 0.2, 0.5)).set_index("share")
    for s in (0.0, 0.2, 0.5):
        truth = 0.1 + 0.75 * s * 0.2  # a quarter of answers have no coin: they always show the ranked item
        std_error = (est.loc[s, "ci_high"] - est.loc[s, "ci_low"]) / 3.92
        assert abs(est.loc[s, "estimate"] - truth) < 3 * std_error, (s, truth, est.loc[s].to_dict())
    # the 95 % intervals carry the truth about as often as they say (20 logs of 2,000 answers)
    for s in (0.0, 0.2, 0.5):
        truth = 0.1 + 0.75 * s * 0.2
        runs = [exploration_estimates(_answers(2_000, 0.2, seed), shares=(s,)).iloc[0] for seed in range(10, 30)]
        covered = sum(r["ci_low"] <= truth <= r["ci_high"] for r in runs)
        assert covered >= 16, (s, covered)
    assert est.loc[0.2, "effective_n"] == pytest.approx(20_000, rel=1e-6)  # the logging share: weights 1
    assert est.loc[0.5, "effective_n"] < est.loc[0.2, "effective_n"]
    # a log that never explored says nothing about exploring; other policies' rows are not read
    never = _answers(500, share=0.0, seed=2)
    assert exploration_estimates(never, shares=(0.0, 0.2))["share"].tolist() == [0.0]
    assert exploration_estimates(fb.assign(policy="greedy")).empty
