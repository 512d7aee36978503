"""Headless Chromium through Selenium WebDriver, and the Interestflow page check.

Used by the browser test (``tests/plugins/test_plugin_browser.py``) and for manual screenshots of
a running ``make airflow`` (password read from ``.airflow/``, first user with recommendations,
screenshots into the state folder ``.interestflow/``)::

    .venv/bin/python -m ml.ui.browser [--base-url http://127.0.0.1:8080] [--user U0000001] [--out DIR]

``check_page`` logs in through Airflow's own login page, opens the Interestflow entry of the
Airflow UI (the page in an iframe), looks a user up, reads back the rendered recommendations and
counts the SVG marks every chart drew, and saves two screenshots: ``ui-airflow.png`` (the page
inside the Airflow UI, scrolled to the user) and ``ui-screenshot.png`` (the whole page).
Selenium drives Debian's ``chromium`` through Debian's ``chromedriver`` (``make system-deps``).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
    "--mute-audio",
)
PLUGIN_ROUTE = "/plugin/interestflow"
PAGE_PATH = "/interestflow/"
FRAME = "document.querySelector('iframe') && document.querySelector('iframe').contentDocument"


def find_chromium() -> str | None:
    """The Chromium binary (``$CHROMIUM`` first), or None when not installed."""
    explicit = os.environ.get("CHROMIUM")
    if explicit and Path(explicit).exists():
        return explicit
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BrowserError(RuntimeError):
    """The browser did not reach the expected state (the message says which)."""


class Page:
    """One Chromium tab driven through Selenium's WebDriver (Debian's ``chromedriver``)."""

    def __init__(self, driver: Any, timeout: float = 60.0):
        self.driver = driver
        self.timeout = timeout

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        from selenium.common.exceptions import JavascriptException

        try:
            return self.driver.execute_script(f"return ({expression});")
        except JavascriptException as exc:
            raise BrowserError(f"JavaScript error in {expression[:80]!r}: {exc.msg}") from None

    def wait_for(self, expression: str, what: str, timeout: float = 60.0) -> None:
        """Poll until ``expression`` is truthy; raise naming ``what`` (and the page URL) if never."""
        from selenium.common.exceptions import TimeoutException, WebDriverException
        from selenium.webdriver.support.ui import WebDriverWait

        def truthy(_: Any) -> bool:
            try:
                return bool(self.evaluate(f"!!({expression})"))
            except BrowserError:
                return False

        try:
            WebDriverWait(self.driver, timeout, poll_frequency=0.25, ignored_exceptions=(WebDriverException,)).until(
                truthy
            )
        except TimeoutException:
            raise BrowserError(
                f"timed out after {timeout:.0f} s waiting for {what} (page: {self.driver.current_url})"
            ) from None

    def navigate(self, url: str) -> None:
        self.driver.get(url)
        self.wait_for("document.readyState === 'complete'", f"{url} to load")

    def type_into(self, selector: str, text: str) -> None:
        """Type into an input with real key events (React forms see them)."""
        from selenium.webdriver.common.by import By

        self.driver.find_element(By.CSS_SELECTOR, selector).send_keys(text)

    def screenshot(self, path: Path, full_page: bool = False) -> Path:
        """Save a PNG of the viewport (or of the whole page) to ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if not full_page:
            self.driver.save_screenshot(str(path))
            return path
        # the whole length: Chromium's own capture beyond the viewport (WebDriver has none)
        m = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = m.get("cssContentSize") or m["contentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True}
        )
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


def find_chromedriver() -> str | None:
    """The chromedriver binary (``$CHROMEDRIVER`` first), or None when not installed."""
    explicit = os.environ.get("CHROMEDRIVER")
    if explicit and Path(explicit).exists():
        return explicit
    return shutil.which("chromedriver")


@contextlib.contextmanager
def chromium(binary: str | None = None, width: int = 1440, height: int = 1000, timeout: float = 60.0) -> Iterator[Page]:
    """Start headless Chromium (a throw-away profile) under chromedriver; yield its first tab."""
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    exe = binary or find_chromium()
    driver_exe = find_chromedriver()
    if not exe or not driver_exe:
        raise BrowserError("chromium or chromedriver is not installed (make system-deps installs Debian's)")
    options = webdriver.ChromeOptions()
    options.binary_location = exe
    for flag in (*CHROMIUM_FLAGS, f"--window-size={width},{height}"):
        options.add_argument(flag)
    # the driver given explicitly: Selenium Manager would otherwise look for one on the network
    service = Service(executable_path=driver_exe)
    try:
        driver = webdriver.Chrome(options=options, service=service)
    except WebDriverException as exc:
        raise BrowserError(f"chromium did not start under {driver_exe}: {exc.msg}") from None
    try:
        driver.set_page_load_timeout(timeout)
        driver.set_script_timeout(timeout)
        yield Page(driver, timeout)
    finally:
        with contextlib.suppress(Exception):
            driver.quit()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process started in its own session, and its children."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


@dataclass
class ApiServer:
    """``airflow api-server`` on a free port with the project's plugins (stopped on exit).

    ``env`` is the full environment (the caller's Airflow home, metadata DB and warehouse);
    the server's output goes to ``log_file``.
    """

    env: dict[str, str]
    log_file: Path
    port: int = 0
    startup_timeout: float = 240.0
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ApiServer:
        from ml.orchestration.local import airflow_bin

        self.port = self.port or free_port()
        env = {
            **self.env,
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__BASE_URL": self.base_url,
            "AIRFLOW__API__WORKERS": "1",
        }
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "wb")
        cmd = [airflow_bin(), "api-server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        self._proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self._proc.poll() is not None:
                raise BrowserError(f"airflow api-server exited ({self._proc.returncode}); see {self.log_file}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/api/v2/monitor/health", timeout=5) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise BrowserError(f"airflow api-server not up after {self.startup_timeout:.0f} s; see {self.log_file}")
            time.sleep(1.0)

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            _stop(self._proc)
            self._proc = None


@dataclass
class PageCheck:
    """What the browser saw: the user looked up, the rendered top-k item ids (in rank order),
    SVG marks per section (``if-series`` lines, ``if-bar`` bars, ``if-point``, ``if-errorbar``),
    rows of marketing copy variants (``copy_rows``) and the notes it shows (``notes``: e.g. "... not available yet"),
    the text shown for an unknown user, the items the assistant box answered ``question`` with
    (empty when no question was asked) and the screenshots written."""

    user_id: str
    rendered_items: list[str]
    marks: dict[str, dict[str, Any]]
    unknown_user_text: str
    screenshots: list[Path]
    assistant_items: list[str]


_MARKS_JS = """
(() => {
  const d = %s;
  const out = {};
  for (const id of ['models', 'quality', 'exploration', 'campaigns', 'user']) {
    const s = d.getElementById(id);
    out[id] = {
      charts: s.querySelectorAll('svg.if-chart').length,
      series: s.querySelectorAll('svg .if-series').length,
      points: s.querySelectorAll('svg .if-point').length,
      bars: s.querySelectorAll('svg .if-bar').length,
      errorbars: s.querySelectorAll('svg .if-errorbar').length,
      copy_rows: s.querySelectorAll('.copy tbody tr').length,
      notes: Array.from(s.querySelectorAll('p.note')).map(n => n.textContent),
    };
  }
  return out;
})()
"""


# charts draw right after the script that filled their section; an empty box is one still to draw
_CHARTS_DRAWN = "Array.from((%s).querySelectorAll('.chart')).every(c => c.childElementCount > 0)"


def _lookup_js(doc: str, user_id: str) -> str:
    return (
        f"(() => {{ const d = {doc}; d.getElementById('user-input').value = {json.dumps(user_id)}; "
        "d.getElementById('lookup-form').requestSubmit(); return true; })()"
    )


def check_page(
    base_url: str,
    username: str,
    password: str,
    user_id: str,
    out_dir: Path,
    binary: str | None = None,
    timeout: float = 90.0,
    question: str | None = None,
) -> PageCheck:
    """Log in, open the Interestflow page in the Airflow UI, look ``user_id`` up, ask the
    assistant ``question`` for that user (when given), screenshot."""
    out_dir = Path(out_dir)
    shots: list[Path] = []
    with chromium(binary, timeout=timeout) as page:
        page.navigate(f"{base_url}/auth/login?next={quote(PLUGIN_ROUTE)}")
        page.wait_for("document.querySelector('input[name=username]')", "Airflow's login form", timeout)
        page.type_into("input[name=username]", username)
        page.type_into("input[name=password]", password)
        page.evaluate("document.querySelector('button[type=submit]').click()")
        page.wait_for(
            f"location.pathname === {json.dumps(PLUGIN_ROUTE)}", "the Interestflow entry after login", timeout
        )
        page.wait_for(f"{FRAME} && {FRAME}.querySelector('#models svg.if-chart')", "the models chart", timeout)
        page.evaluate(_lookup_js(FRAME, user_id))
        page.wait_for(
            f"{FRAME}.querySelector('#user .body').dataset.user === {json.dumps(user_id)}",
            f"user {user_id} to render",
            timeout,
        )
        page.wait_for(
            f"{FRAME}.querySelectorAll('#exploration .body[data-state]').length === 0", "exploration", timeout
        )
        page.wait_for(f"{FRAME}.querySelectorAll('#quality .body[data-state]').length === 0", "data quality", timeout)
        page.wait_for(_CHARTS_DRAWN % FRAME, "every chart to draw", timeout)
        items = page.evaluate(f"Array.from({FRAME}.querySelectorAll('#recs tbody tr')).map(r => r.dataset.key)")
        marks = page.evaluate(_MARKS_JS % FRAME)
        time.sleep(0.5)
        shots.append(page.screenshot(out_dir / "ui-airflow.png"))
        # the page alone, whole length, with the same user
        page.navigate(f"{base_url}{PAGE_PATH}?user={quote(user_id)}")
        page.wait_for(
            f"document.querySelector('#user .body').dataset.user === {json.dumps(user_id)}", "the page alone", timeout
        )
        page.wait_for("document.querySelectorAll('main .body[data-state]').length === 0", "every section", timeout)
        page.wait_for(_CHARTS_DRAWN % "document", "every chart to draw", timeout)
        answered: list[str] = []
        if question:
            page.evaluate(
                f"(() => {{ document.getElementById('assistant-input').value = {json.dumps(question)}; "
                "document.getElementById('assistant-form').requestSubmit(); return true; })()"
            )
            page.wait_for(
                "['answered', 'refused'].includes(document.querySelector('#assistant .body').dataset.state)",
                "the assistant's answer",
                timeout,
            )
            answered = page.evaluate(
                "Array.from(document.querySelectorAll('#assistant-items tbody tr')).map(r => r.dataset.key)"
            )
        page.evaluate("window.scrollTo(0, 0)")
        time.sleep(0.5)
        shots.append(page.screenshot(out_dir / "ui-screenshot.png", full_page=True))
        page.evaluate(_lookup_js("document", "no-such-user-0"))
        page.wait_for(
            "document.querySelector('#user .body').dataset.state === 'not-found'", "the unknown user", timeout
        )
        unknown = str(page.evaluate("document.querySelector('#user .body').textContent"))
    return PageCheck(
        user_id, [str(i) for i in items or []], marks or {}, unknown, shots, [str(i) for i in answered or []]
    )


def _default_user() -> str:
    from ml.ui import views
    from ml.ui.reader import WarehouseReader

    with WarehouseReader.from_env().session() as rs:
        found = views.users(rs, "", 1).get("users") or []
    if not found:
        raise SystemExit("no users in the warehouse yet: run make demo first, or pass --user")
    return str(found[0])


def main(argv: list[str] | None = None) -> int:
    from ml import config

    home = Path(os.environ.get("AIRFLOW_HOME", config.PROJECT_ROOT / ".airflow"))
    p = argparse.ArgumentParser(prog="python -m ml.ui.browser", description="Screenshot the Interestflow page.")
    p.add_argument("--base-url", default="http://127.0.0.1:8080", help="the Airflow api-server")
    p.add_argument("--username", default="admin")
    p.add_argument("--password", help="default: the user's entry in --password-file")
    p.add_argument(
        "--password-file",
        type=Path,
        default=home / "simple_auth_manager_passwords.json.generated",
        help="the simple auth manager's JSON {user: password} (default: %(default)s)",
    )
    p.add_argument("--user", help="the user id to look up (default: the first user with recommendations)")
    p.add_argument("--out", type=Path, default=config.state_dir(), help="folder for the screenshots (%(default)s)")
    args = p.parse_args(argv)
    password = args.password or json.loads(args.password_file.read_text())[args.username]
    res = check_page(args.base_url.rstrip("/"), args.username, password, args.user or _default_user(), args.out)
    print(json.dumps({**res.__dict__, "screenshots": [str(s) for s in res.screenshots]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
