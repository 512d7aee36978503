"""Child processes that end with their parent.

A parent goes in one of two ways, and each needs its own mechanism:

* **It is asked to stop** (SIGTERM from a service manager or ``kill``, SIGINT from Ctrl-C,
  SIGHUP from a closed terminal). :func:`supervise` starts each child in its own process
  group, and on any of these signals sends SIGTERM to every group, waits a grace period, then
  SIGKILLs the groups and every descendant still alive. The supervisor is a *child subreaper*
  (``PR_SET_CHILD_SUBREAPER``): a descendant that left its group (Airflow's task processes
  ``setpgid`` themselves) and lost its own parent is re-parented to the supervisor, so it is
  still found and stopped.
* **It is killed** (SIGKILL, the OOM killer): no code of the parent runs. Linux's
  ``PR_SET_PDEATHSIG``, set in the child between fork and exec (:func:`die_with_parent`), makes
  the kernel signal the child when its parent dies. It reaches **direct children only**; they
  must stop their own children on SIGTERM, which Airflow's components and short CLI commands do.
  A child may still hang in its own shutdown (Airflow's scheduler does when the signal lands
  while its LocalExecutor forks its workers: a worker it has not yet counted takes one of the
  stop messages and the scheduler waits for another worker forever), so :func:`supervise` also
  starts a *watchdog* (:func:`watch`), a small process of its own session reading a pipe from
  the supervisor: when the pipe closes without a stand-down message the supervisor has died,
  and the watchdog gives the groups the grace period, then SIGKILLs what is left of them.

Both ``prctl`` options are Linux-only; elsewhere these calls are no-ops and children outlive a
killed parent. A caveat of ``PR_SET_PDEATHSIG``: the "parent" is the *thread* that forked, so a
child started from a thread that ends before it would be signalled early. Every caller here
forks from the thread that also waits for the child.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TextIO

# from <linux/prctl.h>
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _libc_prctl() -> Callable[..., int] | None:
    """libc's ``prctl``, resolved in the parent: the child between fork and exec must not load
    libraries (``dlopen`` takes locks another thread of the parent may have held at fork)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    fn: Callable[..., int] = libc.prctl
    return fn


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn`` that asks the kernel to send ``sig`` to the child when the process
    creating it dies (including by SIGKILL). If the parent died between fork and the ``prctl``
    call the child would never be signalled, so it then signals itself."""
    prctl = _libc_prctl()
    parent = os.getpid()

    def preexec() -> None:
        if prctl is None:
            return
        prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), sig)

    return preexec


def become_subreaper() -> bool:
    """Make orphaned descendants of this process re-parent to it instead of to init (Linux)."""
    prctl = _libc_prctl()
    return prctl is not None and prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def run(cmd: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[Any]:
    """:func:`subprocess.run` whose child is SIGTERMed when this process dies.

    SIGINT needs nothing more: ``subprocess.run`` kills the child when the wait is interrupted,
    and Ctrl-C in a terminal signals the whole foreground group anyway. SIGTERM's default action
    and SIGKILL end this process at once; ``PR_SET_PDEATHSIG`` then ends the child."""
    return subprocess.run(list(cmd), preexec_fn=die_with_parent(), **kw)


def run_streaming(cmd: Sequence[str], on_line: Callable[[str], None], **kw: Any) -> subprocess.CompletedProcess[str]:
    """Like :func:`run` with stdout and stderr merged and captured as text, handing each line to
    ``on_line`` as it arrives (a long child's progress reaches the log while it runs). The child
    is killed when this process is interrupted or dies."""
    lines: list[str] = []
    with subprocess.Popen(
        list(cmd),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=die_with_parent(),
        **kw,
    ) as proc:
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                on_line(line.rstrip("\n"))
        except BaseException:
            proc.kill()
            raise
    return subprocess.CompletedProcess(list(cmd), proc.returncode, "".join(lines), "")


def signal_group(pid: int, sig: int) -> None:
    """Send ``sig`` to the process group of ``pid`` (to ``pid`` alone if it has none); a process
    that has exited already is ignored."""
    try:
        os.killpg(os.getpgid(pid), sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


@dataclass(frozen=True)
class Child:
    """One long-running child of :func:`supervise`: its name (in the supervisor's messages) and argv."""

    name: str
    argv: list[str]


def supervise(
    children: Sequence[Child],
    env: dict[str, str] | None = None,
    grace_s: float = 20.0,
    out: TextIO | None = None,
    poll_s: float = 0.2,
) -> int:
    """Run ``children`` until this process is asked to stop or one of them exits, then stop
    them all. Returns 0 when it was asked to stop (a requested stop that completed is a clean
    exit, as for ``airflow standalone``, gunicorn or uvicorn, and what a service manager
    expects), else the exit code of the child that ended first (1 if that was 0: the others
    did not choose to stop).

    Each child gets its own session and process group and ``PR_SET_PDEATHSIG`` (SIGTERM), and
    writes to this process's stdout and stderr itself. (Not through a pipe to this process: a
    killed supervisor would leave them writing to a pipe without reader, and Airflow's
    scheduler, failing to log "Exiting gracefully", then never stops its LocalExecutor workers
    and hangs in its exit.) The supervisor's own messages go to ``out`` (default stdout).
    SIGTERM, SIGINT and SIGHUP all mean stop, and the children get SIGTERM, their graceful
    shutdown signal (SIGHUP would make a gunicorn api-server reload; SIGINT is not every
    program's stop). A second signal during the grace period SIGKILLs at once. Killed itself,
    also during its own stop, it leaves the stop to the children's ``PR_SET_PDEATHSIG`` and to
    its watchdog, which SIGKILLs what is left of the groups after the same grace period.
    """
    out = out or sys.stdout
    become_subreaper()
    received: list[int] = []

    def on_signal(sig: int, _frame: object) -> None:
        received.append(sig)

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    procs: list[tuple[Child, subprocess.Popen[bytes]]] = []
    watchdog: subprocess.Popen[bytes] | None = None
    ended: tuple[Child, int] | None = None
    try:
        for child in children:
            if received:
                break
            proc = subprocess.Popen(
                child.argv,
                env=env,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
            procs.append((child, proc))
        watchdog = _start_watchdog([p.pid for _, p in procs], grace_s) if procs and not received else None
        next_reap = time.monotonic()
        while not received and ended is None:
            ended = next(((c, p.returncode) for c, p in procs if p.poll() is not None), None)
            if ended is None and time.monotonic() >= next_reap:
                _reap_orphans({p.pid for _, p in procs})
                next_reap = time.monotonic() + 5.0
            if ended is None:
                time.sleep(poll_s)
        if ended is not None:
            _say(out, f"{ended[0].name} exited with code {ended[1]}: stopping the others")
        else:
            _say(out, f"{signal.Signals(received[0]).name} received: stopping {', '.join(c.name for c, _ in procs)}")
    finally:
        # also when starting failed half-way: what did start is stopped. The watchdog stands
        # down only once it is: a supervisor killed during its own stop leaves the groups to it
        spare = {watchdog.pid} if watchdog is not None else set()
        try:
            stop([p.pid for _, p in procs], grace_s, lambda: len(received) > 1, lambda msg: _say(out, msg), spare)
        finally:
            if watchdog is not None:
                _stand_down(watchdog)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        return 0
    assert ended is not None
    return ended[1] or 1


STAND_DOWN = b"stand down\n"


def _start_watchdog(groups: Sequence[int], grace_s: float) -> subprocess.Popen[bytes]:
    """Start :func:`watch` over ``groups`` in a process of its own session (no terminal signal
    reaches it), holding the read end of a pipe whose write end only this process has."""
    return subprocess.Popen(
        [sys.executable, "-m", "ml.orchestration.children", str(grace_s), *map(str, groups)],
        cwd=Path(__file__).resolve().parents[2],  # where the ``ml`` package is
        stdin=subprocess.PIPE,
        start_new_session=True,
    )


def _stand_down(watchdog: subprocess.Popen[bytes]) -> None:
    """Tell the watchdog this process is stopping the groups itself, and wait for it to exit."""
    assert watchdog.stdin is not None
    with contextlib.suppress(OSError):
        watchdog.stdin.write(STAND_DOWN)
        watchdog.stdin.close()
    try:
        watchdog.wait(timeout=10)
    except subprocess.TimeoutExpired:
        watchdog.kill()
        watchdog.wait()


def watch(groups: Sequence[int], grace_s: float, pipe: BinaryIO, poll_s: float = 0.2) -> bool:
    """The watchdog: block until ``pipe`` closes. If it closed without :data:`STAND_DOWN`, the
    supervisor died without stopping ``groups`` (their leaders got SIGTERM from
    ``PR_SET_PDEATHSIG``): wait up to ``grace_s`` for every process of the groups to exit, then
    SIGKILL the groups. Returns whether it had to stop them."""
    if pipe.read() == STAND_DOWN:
        return False
    deadline = time.monotonic() + grace_s
    while any(_group_exists(g) for g in groups) and time.monotonic() < deadline:
        time.sleep(poll_s)
    if left := [g for g in groups if _group_exists(g)]:
        print(f"watchdog: the supervisor died; SIGKILL to process groups {left} after {grace_s:g} s", file=sys.stderr)
    for pgid in groups:
        _killpg(pgid, signal.SIGKILL)
    return True


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member this process may not signal is a member all the same
        pass
    return True


def stop(
    groups: Sequence[int],
    grace_s: float,
    hurry: Callable[[], bool] = lambda: False,
    log: Callable[[str], None] = lambda _msg: None,
    spare: Collection[int] = (),
) -> None:
    """Stop the process groups ``groups`` (each made by a child started with
    ``start_new_session``, so its id is that child's pid) and **every descendant of this
    process** but the ``spare`` pids (the watchdog): SIGTERM to each group, up to ``grace_s``
    seconds (less once ``hurry()`` is true) for all of them to exit, then SIGKILL to the groups
    and to every one still running; reaps exited children."""
    import psutil

    me = psutil.Process()
    known: dict[int, psutil.Process] = {}

    def running() -> list[psutil.Process]:
        # descendants now (orphans re-parented to a subreaper included) and every one seen before
        for p in me.children(recursive=True):
            if p.pid not in spare:
                known.setdefault(p.pid, p)
        return [p for p in known.values() if _running(p)]

    for pid in groups:
        with contextlib.suppress(psutil.Error):
            known[pid] = psutil.Process(pid)
    running()
    for pgid in groups:
        _killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while (left := running()) and time.monotonic() < deadline and not hurry():
        psutil.wait_procs(left, timeout=0.5)
    if left := running():
        log(f"{len(left)} processes still running after SIGTERM: SIGKILL")
        for pgid in groups:
            _killpg(pgid, signal.SIGKILL)
        for p in left:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(left, timeout=10)
    _reap()


def _killpg(pgid: int, sig: int) -> None:
    # by group id, not via os.getpgid(leader): the group outlives a leader that exited first
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _running(p: Any) -> bool:
    import psutil

    try:
        return bool(p.is_running()) and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _reap_orphans(keep: set[int]) -> None:
    """Collect the orphans re-parented to this subreaper that have exited, so they do not stay
    zombies while it runs (not the children in ``keep``, whose status ``Popen`` collects)."""
    import psutil

    with contextlib.suppress(psutil.Error):
        for p in psutil.Process().children():
            if p.pid not in keep and p.status() == psutil.STATUS_ZOMBIE:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(p.pid, os.WNOHANG)


def _reap() -> None:
    """Collect the exit status of any exited child (re-parented orphans included)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] != 0:
            pass


def _say(out: TextIO, line: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        out.write(line + "\n")
        out.flush()


if __name__ == "__main__":  # the watchdog: python -m ml.orchestration.children GRACE_S PGID...
    watch([int(g) for g in sys.argv[2:]], float(sys.argv[1]), sys.stdin.buffer)
