"""Children end with their parent (ml.orchestration.children): real parent processes, real
child trees, real signals."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.unit

# a supervised child that starts a grandchild in its group, one in its own group (as Airflow's
# task runner setpgid's itself), and an orphan in its own group (its parent exits at once: it
# re-parents to the nearest subreaper), then waits
TREE = """
import os, subprocess, sys, time
d = sys.argv[1]
same = subprocess.Popen(["sleep", "300"])
escaped = subprocess.Popen(["sleep", "300"], start_new_session=True)
orphan_code = (
    "import subprocess; "
    "print(subprocess.Popen(['sleep', '300'], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid)"
)
orphan = int(subprocess.run([sys.executable, "-c", orphan_code], capture_output=True, text=True).stdout)
open(d + "/tree.tmp", "w").write(f"{os.getpid()} {same.pid} {escaped.pid} {orphan}")
os.rename(d + "/tree.tmp", d + "/tree.pids")
time.sleep(300)
"""
# a supervised child that ignores SIGTERM
STUBBORN = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(sys.argv[1] + "/stubborn.tmp", "w").write(str(os.getpid()))
os.rename(sys.argv[1] + "/stubborn.tmp", sys.argv[1] + "/stubborn.pids")
time.sleep(300)
"""
# a supervised child that exits with code 3 once the tree has started
QUITTER = """
import os, sys, time
while not os.path.exists(sys.argv[1] + "/tree.pids"):
    time.sleep(0.05)
sys.exit(3)
"""


def _parent(tmp_path: Path, body: str) -> subprocess.Popen[bytes]:
    """A real parent process running ``body`` (``children``, ``d`` (tmp_path) and ``py`` in scope)."""
    script = tmp_path / "parent.py"
    script.write_text(
        "import sys\nfrom ml.orchestration import children\n"
        f"d = {str(tmp_path)!r}\npy = sys.executable\n" + textwrap.dedent(body)
    )
    # its own session: the test can always clean up, and a signal to it reaches nothing else
    with open(tmp_path / "parent.log", "wb") as log:
        return subprocess.Popen(
            [sys.executable, str(script)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def _pids(path: Path, timeout_s: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)
    return [int(x) for x in path.read_text().split()]


def _gone(pids: list[int], timeout_s: float) -> list[int]:
    """The pids still running (not zombies) after waiting up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def _watchdog(pid: int, cleanup: list[int]) -> int:
    """The pid of the supervisor ``pid``'s watchdog once it has started (on the cleanup list)."""
    deadline = time.monotonic() + 30
    while True:
        for p in psutil.Process(pid).children():
            with contextlib.suppress(psutil.Error):  # a short-lived helper may be gone already
                if "ml.orchestration.children" in " ".join(p.cmdline()):
                    cleanup.append(p.pid)
                    return p.pid
        assert time.monotonic() < deadline, "no watchdog started"
        time.sleep(0.05)


@pytest.fixture()
def cleanup():
    """SIGKILL whatever a failing test left behind: the pids it registered and their
    descendants (by pid, never by name)."""
    pids: list[int] = []
    yield pids
    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            p = psutil.Process(pid)
            procs += [p, *p.children(recursive=True)]
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()


SUPERVISE = """
rc = children.supervise(
    [children.Child("tree", [py, "-c", {tree!r}, d]), children.Child("stubborn", [py, "-c", {stubborn!r}, d])],
    grace_s=2.0,
)
sys.exit(rc)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_stopped_supervisor_leaves_no_descendant(tmp_path, cleanup, sig):
    """SIGTERM/SIGINT/SIGHUP to the parent: every child, the grandchild in its group, the one
    that left the group, the orphan that left it (re-parented to the supervisor, a subreaper)
    and the child ignoring SIGTERM (SIGKILLed after the grace period) are gone; a requested
    stop that completed exits 0."""
    parent = _parent(tmp_path, SUPERVISE.format(tree=TREE, stubborn=STUBBORN))
    cleanup.append(parent.pid)
    tree = _pids(tmp_path / "tree.pids")
    stubborn = _pids(tmp_path / "stubborn.pids")
    cleanup += [*tree, *stubborn]
    assert psutil.Process(tree[-1]).ppid() == parent.pid  # the orphan is the supervisor's now
    t0 = time.monotonic()
    parent.send_signal(sig)
    assert parent.wait(timeout=30) == 0
    assert _gone([*tree, *stubborn], timeout_s=5) == []
    assert time.monotonic() - t0 >= 2.0  # the stubborn child had its grace period
    log = (tmp_path / "parent.log").read_text()
    assert f"{signal.Signals(sig).name} received: stopping tree, stubborn" in log
    assert "still running after SIGTERM: SIGKILL" in log


def test_a_killed_supervisor_takes_its_children_with_it(tmp_path, cleanup):
    """SIGKILL to the parent runs none of its code: PR_SET_PDEATHSIG ends its children."""
    body = """
    children.supervise([children.Child(f"sleep{i}", ["sleep", "300"]) for i in range(3)])
    """
    parent = _parent(tmp_path, body)
    cleanup.append(parent.pid)
    me = psutil.Process(parent.pid)
    deadline = time.monotonic() + 30
    while len(me.children()) < 3:
        assert time.monotonic() < deadline, "the children did not start"
        time.sleep(0.05)
    kids = [p.pid for p in me.children()]
    cleanup += kids
    parent.kill()
    parent.wait(timeout=10)
    assert _gone(kids, timeout_s=10) == []


def test_a_killed_supervisor_still_ends_a_child_that_ignores_sigterm(tmp_path, cleanup):
    """A child that does not stop on its SIGTERM (as Airflow's scheduler can hang in its
    shutdown) and a grandchild its dead parent did not stop: SIGKILL to the supervisor, and its
    watchdog SIGKILLs the groups once the grace period is over, not before. Without the
    watchdog both would run on."""
    body = f"""
    children.supervise(
        [children.Child("tree", [py, "-c", {TREE!r}, d]), children.Child("stubborn", [py, "-c", {STUBBORN!r}, d])],
        grace_s=3.0,
    )
    """
    parent = _parent(tmp_path, body)
    cleanup.append(parent.pid)
    tree = _pids(tmp_path / "tree.pids")
    (stubborn,) = _pids(tmp_path / "stubborn.pids")
    cleanup += [*tree, stubborn]
    watchdog = _watchdog(parent.pid, cleanup)
    t0 = time.monotonic()
    parent.kill()
    parent.wait(timeout=10)
    assert _gone([tree[0]], timeout_s=2) == []  # SIGTERM from PR_SET_PDEATHSIG
    time.sleep(max(0.0, t0 + 1.5 - time.monotonic()))
    assert _gone([tree[1], stubborn], timeout_s=0) == [tree[1], stubborn]  # inside the grace period
    assert _gone([tree[1], stubborn, watchdog], timeout_s=10) == []
    assert time.monotonic() - t0 >= 3.0
    assert "watchdog: the supervisor died; SIGKILL to process groups" in (tmp_path / "parent.log").read_text()


def test_a_supervisor_killed_during_its_own_stop_still_ends_a_stubborn_child(tmp_path, cleanup):
    """SIGTERM starts the supervisor's stop; a child ignores it, so the stop waits its grace
    period; SIGKILL to the supervisor then: its watchdog, not yet stood down, SIGKILLs the child
    after the grace period (before, the watchdog stood down first and the child ran on)."""
    body = f"""
    children.supervise([children.Child("stubborn", [py, "-c", {STUBBORN!r}, d])], grace_s=3.0)
    """
    parent = _parent(tmp_path, body)
    cleanup.append(parent.pid)
    (stubborn,) = _pids(tmp_path / "stubborn.pids")
    cleanup.append(stubborn)
    watchdog = _watchdog(parent.pid, cleanup)
    parent.terminate()
    deadline = time.monotonic() + 10
    while "SIGTERM received: stopping stubborn" not in (tmp_path / "parent.log").read_text():
        assert time.monotonic() < deadline, "the supervisor did not start its stop"
        time.sleep(0.05)
    parent.kill()
    parent.wait(timeout=10)
    t0 = time.monotonic()
    assert _gone([watchdog], timeout_s=0) == [watchdog]  # still watching
    assert _gone([stubborn, watchdog], timeout_s=15) == []
    assert time.monotonic() - t0 >= 2.0  # the watchdog's own grace period (3 s) ran first
    assert "watchdog: the supervisor died; SIGKILL to process groups" in (tmp_path / "parent.log").read_text()


def test_a_supervisor_that_stops_stands_its_watchdog_down(tmp_path, cleanup):
    """A requested stop is the supervisor's own: its watchdog exits at once, with nothing to do."""
    body = """
    children.supervise([children.Child("sleeper", ["sleep", "300"])], grace_s=5.0)
    """
    parent = _parent(tmp_path, body)
    cleanup.append(parent.pid)
    me = psutil.Process(parent.pid)
    deadline = time.monotonic() + 30
    while len(kids := me.children()) < 2:
        assert time.monotonic() < deadline, "the child and the watchdog did not start"
        time.sleep(0.05)
    cleanup += [p.pid for p in kids]
    t0 = time.monotonic()
    parent.terminate()
    assert parent.wait(timeout=30) == 0
    assert time.monotonic() - t0 < 4.0  # no wait for a grace period
    assert _gone([p.pid for p in kids], timeout_s=1) == []


def test_the_watchdog_stands_down_or_stops_the_groups(tmp_path, cleanup):
    """``watch`` itself: the stand-down message returns at once; a pipe closed without it
    SIGKILLs the group (a sleeper in its own session) after the grace period."""
    from ml.orchestration import children

    r, w = os.pipe()
    os.write(w, children.STAND_DOWN)
    os.close(w)
    sleeper = subprocess.Popen(["sleep", "300"], start_new_session=True)
    cleanup.append(sleeper.pid)
    with os.fdopen(r, "rb") as pipe:
        assert children.watch([sleeper.pid], 0.5, pipe) is False
    assert sleeper.poll() is None
    r, w = os.pipe()
    os.close(w)
    t0 = time.monotonic()
    with os.fdopen(r, "rb") as pipe:
        assert children.watch([sleeper.pid], 0.5, pipe) is True
    assert sleeper.wait(timeout=5) == -signal.SIGKILL
    assert time.monotonic() - t0 >= 0.5


def test_a_child_that_exits_stops_the_others(tmp_path, cleanup):
    """One component dying is not a running Airflow: the others are stopped and its exit code
    is the supervisor's."""
    body = f"""
    sys.exit(children.supervise(
        [children.Child("quitter", [py, "-c", {QUITTER!r}, d]), children.Child("tree", [py, "-c", {TREE!r}, d])],
        grace_s=2.0,
    ))
    """
    parent = _parent(tmp_path, body)
    cleanup.append(parent.pid)
    tree = _pids(tmp_path / "tree.pids")
    cleanup += tree
    assert parent.wait(timeout=30) == 3
    assert _gone(tree, timeout_s=5) == []
    assert "quitter exited with code 3: stopping the others" in (tmp_path / "parent.log").read_text()


def _first_child(pid: int, cleanup: list[int]) -> int:
    """The pid of ``pid``'s ``sleep`` child once it has started (both go on the cleanup list):
    not a short-lived helper the parent runs on the way there (ctypes' lookup of libc runs
    ``ldconfig``), which may be its first child for a moment."""
    cleanup.append(pid)
    me = psutil.Process(pid)
    deadline = time.monotonic() + 30
    while True:
        sleepers = []
        for p in me.children():
            with contextlib.suppress(psutil.Error):
                if p.cmdline()[:1] == ["sleep"]:
                    sleepers.append(p.pid)
        if sleepers:
            cleanup.append(sleepers[0])
            return sleepers[0]
        assert time.monotonic() < deadline, "the child did not start"
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_run_child_ends_with_its_parent(tmp_path, cleanup, sig):
    """``children.run`` (what ``make demo`` runs ``airflow db migrate`` with): the parent dying
    of SIGTERM's default action or of SIGKILL ends the child it was waiting for."""
    parent = _parent(tmp_path, 'children.run(["sleep", "300"])\n')
    child = _first_child(parent.pid, cleanup)
    os.kill(parent.pid, sig)
    parent.wait(timeout=10)
    assert _gone([child], timeout_s=10) == []


def test_without_pdeathsig_the_child_outlives_its_parent(tmp_path, cleanup):
    """The fault the helpers fix, shown with plain ``subprocess.run``."""
    parent = _parent(tmp_path, 'import subprocess\nsubprocess.run(["sleep", "300"])\n')
    child = _first_child(parent.pid, cleanup)
    parent.terminate()
    parent.wait(timeout=10)
    assert _gone([child], timeout_s=2) == [child]


def test_exited_orphans_do_not_stay_zombies(tmp_path, cleanup):
    """An orphan re-parented to the supervisor that exits is collected while it runs (a long
    ``make airflow`` must not pile up zombies)."""
    short_orphan = (
        "import subprocess, sys; "
        "p = subprocess.Popen(['sleep', '0.5'], start_new_session=True, stdout=subprocess.DEVNULL); "
        "open(sys.argv[1] + '/orphan.tmp', 'w').write(str(p.pid))"
    )
    body = f"""
    import os, subprocess
    children.become_subreaper()  # as supervise() does first: the orphan becomes this process's
    subprocess.run([py, "-c", {short_orphan!r}, d])
    os.rename(d + "/orphan.tmp", d + "/orphan.pids")
    children.supervise([children.Child("sleeper", ["sleep", "300"])])
    """
    parent = _parent(tmp_path, body)
    cleanup.append(parent.pid)
    (orphan,) = _pids(tmp_path / "orphan.pids")
    deadline = time.monotonic() + 20
    while psutil.pid_exists(orphan):
        assert time.monotonic() < deadline, f"the orphan is still {psutil.Process(orphan).status()}"
        time.sleep(0.2)
    parent.terminate()
    assert parent.wait(timeout=30) == 0


def test_run_streaming_hands_over_each_line_while_the_child_runs(tmp_path):
    """The first line arrives before the child has finished (it waits for a file the test writes
    only once it has seen that line), and the result keeps the whole output and the exit code."""
    from ml.orchestration import children

    gate = tmp_path / "go"
    script = (
        "import sys, time, pathlib\n"
        "print('1 of 2 START', flush=True)\n"
        f"p = pathlib.Path({str(gate)!r})\n"
        "t = time.time()\n"
        "while not p.exists() and time.time() - t < 20: time.sleep(0.05)\n"
        "print('2 of 2 OK' if p.exists() else 'never released', flush=True)\n"
        "print('oops', file=sys.stderr)\n"
        "sys.exit(3)\n"
    )
    seen: list[str] = []

    def on_line(line: str) -> None:
        seen.append(line)
        if line == "1 of 2 START":
            gate.write_text("go")

    res = children.run_streaming([sys.executable, "-c", script], on_line)
    assert seen == ["1 of 2 START", "2 of 2 OK", "oops"]
    assert res.returncode == 3 and res.stdout == "1 of 2 START\n2 of 2 OK\noops\n"
