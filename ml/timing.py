"""Stages that time themselves: ``with stage("score", timings): ...`` logs ``stage score: 1.2 s``
and records the stage in ``timings``, which the task returns (benchmarks read it from there)."""

from __future__ import annotations

import logging
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

Timings = dict[str, dict[str, Any]]


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (MB): the kernel's high-water mark, one
    system call, no sampling."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 2**20 if sys.platform == "darwin" else kib / 2**10  # (bytes on macOS)


@contextmanager
def stage(name: str, timings: Timings) -> Iterator[None]:
    """Time the block and record it as ``timings[name]``: ``seconds`` (wall), ``peak_rss_mb``
    (the process's peak so far when the block ends: an Airflow task runs in its own process,
    so a stage that raises the task's peak shows it; it is not the block's own peak). A stage
    that runs again adds its seconds. Recorded and logged also when the block raises."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        seconds = time.perf_counter() - t0
        entry = timings.setdefault(name, {"seconds": 0.0})
        entry["seconds"] = round(entry["seconds"] + seconds, 3)
        entry["peak_rss_mb"] = round(peak_rss_mb(), 1)
        log.info("stage %s: %.1f s", name, seconds)


def add_timings(total: Timings, part: Timings) -> None:
    """Add the stages of ``part`` (another task's or process's timings) to ``total``, as a
    stage that runs again does: seconds summed, the larger peak RSS kept."""
    for name, entry in part.items():
        t = total.setdefault(name, {"seconds": 0.0})
        t["seconds"] = round(t["seconds"] + entry["seconds"], 3)
        t["peak_rss_mb"] = max(t.get("peak_rss_mb", 0.0), entry.get("peak_rss_mb", 0.0))
