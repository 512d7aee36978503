"""Progress of long work: a bar with an ETA on a terminal, plain periodic lines in a log.

``with Progress(total, "generate large shop") as p: ... p.update(1, "sessions")`` draws a tqdm
bar (elapsed, ETA, the current step's note) when stderr is a terminal; anywhere else (an Airflow
task log, CI, a file) it logs one line at most every ``every`` seconds and one at the end::

    generate large shop: 3/7 steps (43 %), sessions, 21 s elapsed, ETA 28 s

Used by the shop generator, the tagger's fine-tune and the benchmarks' stages.
"""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType
from typing import Any

log = logging.getLogger("ml.progress")


def on_terminal() -> bool:
    """True when stderr is an interactive terminal (a bar can redraw itself there)."""
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class Progress:
    """``total`` units of work called ``unit``; :meth:`update` after each. ``bar``: None = a
    tqdm bar when :func:`on_terminal`, else log lines every ``every`` seconds."""

    def __init__(
        self,
        total: float,
        desc: str,
        unit: str = "step",
        every: float = 10.0,
        bar: bool | None = None,
        logger: logging.Logger | None = None,
    ):
        if total < 0:
            raise ValueError(f"total must be >= 0, got {total}")
        self.total = total
        self.desc = desc
        self.unit = unit
        self.every = every
        self.done = 0.0
        self.note = ""
        self.logger = logger or log
        self._bar: Any = None
        self._use_bar = on_terminal() if bar is None else bar
        self._t0 = time.monotonic()
        self._last = self._t0
        self._logged = -1.0  # the amount done when the last line was logged

    def __enter__(self) -> Progress:
        self._t0 = self._last = time.monotonic()
        if self._use_bar:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=self.desc, unit=self.unit, dynamic_ncols=True, leave=True)
        return self

    def update(self, n: float = 1, note: str = "") -> None:
        """``n`` more units done; ``note`` names what is under way (shown beside the count)."""
        self.done += n
        self.note = note or self.note
        if self._bar is not None:
            if note:
                self._bar.set_postfix_str(note, refresh=False)
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last, self._logged = now, self.done
            self.logger.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        """The plain progress line: done/total, percent, note, elapsed and ETA."""
        elapsed = (time.monotonic() if now is None else now) - self._t0
        share = self.done / self.total if self.total else 1.0
        parts = [f"{self.desc}: {self.done:g}/{self.total:g} {self.unit}s ({100 * share:.0f} %)"]
        if self.note:
            parts.append(self.note)
        parts.append(f"{_duration(elapsed)} elapsed")
        if 0 < share < 1:
            parts.append(f"ETA {_duration(elapsed * (1 - share) / share)}")
        return ", ".join(parts)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.close()
            return
        if exc_type is None and self._logged != self.done:
            self.logger.info("%s", self.line())
