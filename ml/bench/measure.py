"""Shared helpers for benchmarks: wall time and peak RSS of a stage, JSON output, tables."""

from __future__ import annotations

import json
import logging
import os
import resource
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger(__name__)


def rss_mb() -> float:
    return psutil.Process(os.getpid()).memory_info().rss / 2**20


def release_freed_memory() -> None:
    """Hand memory that is freed but still held back to the OS: a cyclic-GC pass, Arrow's pool
    (pandas' string columns live there) and glibc's heap (``malloc_trim``; a no-op elsewhere).

    The direct pipeline run keeps every stage in one process, where Airflow runs each task in
    a fresh one; without this, a stage's peak RSS would include what earlier stages freed."""
    import ctypes
    import gc

    gc.collect()
    with suppress(Exception):
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    with suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def peak_rss_mb_lifetime() -> float:
    """Peak RSS of this process since it started (ru_maxrss, KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Stage:
    name: str
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


@contextmanager
def measure(name: str, interval: float = 0.05, include_children: bool = True) -> Iterator[Stage]:
    """Time a block and sample the peak RSS (this process plus its children) while it runs; a
    log line when it starts and one when it ends (a benchmark's progress, stage by stage)."""
    stage = Stage(name)
    log.info("stage %s: started", name)
    proc = psutil.Process(os.getpid())
    stop = threading.Event()
    peak = [0.0]

    def sample() -> None:
        # listing children scans every process on the machine, which costs more than the stage
        # can spare at 20 Hz (the sampler shares the GIL): refresh that list once a second only
        children: list[psutil.Process] = []
        next_scan = 0.0
        while not stop.is_set():
            try:
                total = proc.memory_info().rss
                if include_children:
                    now = time.monotonic()
                    if now >= next_scan:
                        children = proc.children(recursive=True)
                        next_scan = now + 1.0
                    for c in children:
                        with suppress(psutil.Error):
                            total += c.memory_info().rss
                peak[0] = max(peak[0], total / 2**20)
            except psutil.Error:
                pass
            stop.wait(interval)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    t0 = time.perf_counter()
    try:
        yield stage
    finally:
        stage.seconds = time.perf_counter() - t0
        stop.set()
        t.join()
        stage.peak_rss_mb = round(max(peak[0], rss_mb()), 1)
        log.info("stage %s: %.1f s, peak RSS %.0f MB", name, stage.seconds, stage.peak_rss_mb)


def write_json(out_dir: Path, name: str, payload: dict[str, Any]) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path


def table(rows: list[dict[str, Any]], columns: list[str] | None = None, floatfmt: str = "{:.4f}") -> str:
    """A plain-text table (no extra dependency)."""
    if not rows:
        return "(no rows)"
    cols = columns or list(rows[0])

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return floatfmt.format(v)
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    line = "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join([line, sep, *body])
