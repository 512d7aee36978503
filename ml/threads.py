"""Small helpers for work that runs beside the main thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


def in_background(fn: Callable[..., Any], *args: Any) -> Future[Any]:
    """``fn(*args)`` started on a new daemon thread; its result (or error) comes through the
    future. A caller that fails before asking for it leaves the thread to finish on its own, so
    ``fn`` should only read shared state (and open read-only connections)."""
    fut: Future[Any] = Future()

    def run() -> None:
        if fut.set_running_or_notify_cancel():
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:
                fut.set_exception(exc)

    threading.Thread(target=run, name=f"bg-{getattr(fn, '__name__', 'task')}", daemon=True).start()
    return fut
