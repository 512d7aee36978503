"""The page in a real browser: Airflow's api-server on the living tiny shop (every DAG, then two
simulated days: tests/conftest.py::living_shop), headless Chromium (Selenium WebDriver over Debian's chromedriver) logs in through Airflow's
login page, opens the Interestflow entry, looks a user up; the rendered top-k must be the
published one, and every section must have data: every chart draws and no section says that
something is not available yet.

Screenshots land in the test's tmp folder and are copied to ``$INTERESTFLOW_HOME``
(``ui-screenshot.png``: the whole page; ``ui-airflow.png``: the page inside the Airflow UI).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil

import pytest

from ml import config
from tests.conftest import in_ci

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def chromium_binary() -> str:
    from ml.ui.browser import find_chromedriver, find_chromium

    found = find_chromium()
    if found is None or find_chromedriver() is None:
        if in_ci():
            pytest.fail("chromium or chromedriver is missing and CI=true: scripts/system-deps.sh installs them")
        pytest.skip("chromium or chromedriver is not installed (make system-deps)")
    return found


def _expected(wh, tmp_path, user_id: str) -> dict:
    """What the page should draw, from the same views the endpoints use."""
    from ml.ui import views
    from ml.ui.reader import WarehouseReader

    with WarehouseReader(wh, snapshot_dir=tmp_path / "expect-snaps").session() as rs:
        return {
            "models": views.models(rs, family="recommender"),
            "quality": views.quality(rs),
            "exploration": views.exploration(rs),
            "campaigns": views.campaigns(rs),
            "user": views.user(rs, user_id),
        }


def _pick_user(wh) -> str:
    """A user with a published slate, preferring one with an interest profile."""
    with wh.connect(read_only=True) as con:
        if wh.table_exists(con, "ml", "user_interest_profiles"):
            df = wh.query(
                "select min(r.user_id) as u from serving.recommendations_current r "
                "join ml.user_interest_profiles p on p.user_id = r.user_id",
                None,
                con,
            )
            if df["u"].iloc[0] is not None:
                return str(df["u"].iloc[0])
        return str(wh.query("select min(user_id) as u from serving.recommendations_current", None, con)["u"].iloc[0])


def test_page_in_the_airflow_ui_shows_a_users_top_k_and_every_section_has_data(
    living_shop, chromium_binary, tmp_path, capsys
):
    from ml.ui.browser import ApiServer, check_page

    wh = living_shop["wh"]
    user_id = _pick_user(wh)
    password = secrets.token_urlsafe(12)
    (tmp_path / "passwords.json").write_text(json.dumps({"admin": password}))
    env = {
        **os.environ,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(tmp_path / "passwords.json"),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "INTERESTFLOW_UI_REFRESH_SECONDS": "0",
        "INTERESTFLOW_UI_QUIET_SECONDS": "0",
        "INTERESTFLOW_WAREHOUSE": wh.url,
    }
    with ApiServer(env, tmp_path / "api-server.log") as server:
        leaf = wh.query("select min(category_l3) as c from marts.item_features")["c"].iloc[0]
        seen = check_page(
            server.base_url, "admin", password, user_id, tmp_path, binary=chromium_binary, question=f"{leaf}"
        )

    want = wh.query("select item_id from serving.recommendations_current where user_id = ? order by rank", [user_id])
    assert seen.rendered_items == want["item_id"].tolist()
    assert "No such user: no-such-user-0" in seen.unknown_user_text
    in_leaf = set(wh.query("select item_id from marts.item_features where category_l3 = ?", [leaf])["item_id"])
    assert seen.assistant_items and set(seen.assistant_items) <= in_leaf  # the box answered from that category

    exp = _expected(wh, tmp_path, user_id)
    (rec,) = exp["models"]["families"]
    assert seen.marks["models"]["series"] >= len({v["model_name"] for v in rec["versions"]}) > 0
    assert seen.marks["models"]["points"] >= len(rec["versions"])
    counts = exp["user"]["behaviour"]["counts"]
    profile = exp["user"]["profile"]
    profile_bars = min(len(profile.get("known", [])), 12) + min(len(profile.get("candidate", [])), 12)
    assert profile_bars > 0 and seen.marks["user"]["bars"] == len(counts) + profile_bars
    quarantine = exp["quality"]["quarantine"]
    assert quarantine["total"] > 0 and seen.marks["quality"]["bars"] == len(quarantine["reasons"])
    assert exp["exploration"]["estimates"]["current"]
    assert seen.marks["exploration"]["bars"] >= 1 and seen.marks["exploration"]["errorbars"] >= 1
    assert exp["exploration"]["ctr"]["days"] and seen.marks["exploration"]["series"] >= 1
    variants = [v for c in exp["campaigns"]["campaigns"] for a in c["copy"] for v in a["variants"]]
    assert variants and seen.marks["campaigns"]["copy_rows"] == len(variants)  # every published copy variant
    for section, marks in seen.marks.items():
        missing = [n for n in marks["notes"] if "not available" in n or "yet" in n]
        assert not missing, f"{section} shows no data: {missing}"

    copies = []
    for shot in seen.screenshots:
        data = shot.read_bytes()
        assert data.startswith(PNG) and len(data) > 20_000, shot
        copies.append(shutil.copy(shot, config.state_dir() / shot.name))
    with capsys.disabled():
        print(f"\nInterestflow UI screenshots ({user_id}): {', '.join(map(str, seen.screenshots + copies))}")
