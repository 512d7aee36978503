"""Progress lines (``ml.progress``): a bar on a terminal, periodic plain lines in a log."""

from __future__ import annotations

import io
import logging

import pytest

from ml.progress import Progress

pytestmark = pytest.mark.unit


def test_in_a_log_it_writes_periodic_lines_with_an_eta_and_one_at_the_end(caplog, monkeypatch):
    clock = iter([0.0, 0.0, 5.0, 12.0, 13.0, 30.0, 30.0])
    monkeypatch.setattr("ml.progress.time.monotonic", lambda: next(clock))
    with (
        caplog.at_level(logging.INFO, logger="ml.progress"),
        Progress(4, "generate the large shop", every=10.0, bar=False) as p,
    ):
        p.update(1, "items")  # 5 s: too soon for a line
        p.update(1, "users")  # 12 s: a line
        p.update(1, "sessions")  # 13 s: too soon again
        p.update(1, "events")
    lines = [r.getMessage() for r in caplog.records if r.name == "ml.progress"]
    assert lines == [
        "generate the large shop: 2/4 steps (50 %), users, 12 s elapsed, ETA 12 s",
        "generate the large shop: 4/4 steps (100 %), events, 30 s elapsed",
    ]


def test_on_a_terminal_it_draws_a_bar_and_logs_nothing(caplog, monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    with (
        caplog.at_level(logging.INFO, logger="ml.progress"),
        Progress(3, "fine-tune the tagger", unit="batch", bar=True) as p,
    ):
        for i in range(3):
            p.update(1, f"loss {i}")
    assert not [r for r in caplog.records if r.name == "ml.progress"]
    drawn = err.getvalue()
    assert "fine-tune the tagger" in drawn and "3/3" in drawn and "loss 2" in drawn


def test_a_failed_block_logs_no_final_line_and_bad_totals_are_refused(caplog):
    with (
        caplog.at_level(logging.INFO, logger="ml.progress"),
        pytest.raises(RuntimeError),
        Progress(2, "write", bar=False) as p,
    ):
        p.update(1)
        raise RuntimeError("disk full")
    assert not [r for r in caplog.records if r.name == "ml.progress"]
    with pytest.raises(ValueError, match="total must be >= 0"):
        Progress(-1, "nothing")
