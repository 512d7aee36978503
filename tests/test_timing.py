"""Stages time themselves: ``ml.timing.stage`` records seconds and the process's peak RSS in the
dict a task returns, logs one line per stage, and still records a stage that raises."""

from __future__ import annotations

import logging
import time

import pytest

from ml.timing import Timings, peak_rss_mb, stage

pytestmark = pytest.mark.unit


def test_a_stage_records_its_seconds_and_logs_them(caplog: pytest.LogCaptureFixture) -> None:
    timings: Timings = {}
    with caplog.at_level(logging.INFO, logger="ml.timing"), stage("score", timings):
        time.sleep(0.02)
    assert set(timings) == {"score"}
    assert set(timings["score"]) == {"seconds", "peak_rss_mb"}
    assert 0.02 <= timings["score"]["seconds"] < 1.0
    assert 0 < timings["score"]["peak_rss_mb"] <= peak_rss_mb() + 0.1
    assert [r.getMessage() for r in caplog.records] == [f"stage score: {timings['score']['seconds']:.1f} s"]


def test_a_stage_that_runs_again_adds_its_seconds() -> None:
    timings: Timings = {}
    for _ in range(2):
        with stage("log", timings):
            time.sleep(0.01)
    assert timings["log"]["seconds"] >= 0.02


def test_a_failing_stage_is_still_recorded() -> None:
    timings: Timings = {}
    with pytest.raises(ValueError), stage("gate", timings):
        raise ValueError("bad rows")
    assert timings["gate"]["seconds"] >= 0


def test_nested_stages() -> None:
    timings: Timings = {}
    with stage("publish", timings), stage("slate_log", timings):
        time.sleep(0.01)
    assert timings["publish"]["seconds"] >= timings["slate_log"]["seconds"] >= 0.01


def test_timings_of_two_tasks_add_up() -> None:
    from ml.timing import add_timings

    total: Timings = {}
    add_timings(total, {"score": {"seconds": 1.5, "peak_rss_mb": 100.0}})
    add_timings(total, {"score": {"seconds": 2.0, "peak_rss_mb": 80.0}, "switch": {"seconds": 0.5}})
    assert total == {
        "score": {"seconds": 3.5, "peak_rss_mb": 100.0},
        "switch": {"seconds": 0.5, "peak_rss_mb": 0.0},
    }
