"""The plugin inside Airflow's own api-server app, after a real pipeline run on the tiny shop:
registered with a navigation entry, refused without login, real data after logging in."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

pytestmark = [pytest.mark.dags, pytest.mark.slow]


@pytest.fixture(scope="module")
def airflow_app(pipeline_warehouse) -> Any:
    from airflow.api_fastapi.app import create_app

    return create_app()


@pytest.fixture(scope="module")
def login(airflow_app) -> str:
    """A JWT from Airflow's own login endpoint with the generated admin password."""
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    with open(SimpleAuthManager.get_generated_password_file()) as f:
        password = json.load(f)["admin"]
    res = TestClient(airflow_app).post("/auth/token", json={"username": "admin", "password": password})
    assert res.status_code == 201, res.text
    return str(res.json()["access_token"])


def test_plugin_registers_the_app_and_a_navigation_entry(airflow_app, login):
    c = TestClient(airflow_app, headers={"Authorization": f"Bearer {login}"})
    plugins = {p["name"]: p for p in c.get("/api/v2/plugins").json()["plugins"]}
    ours = plugins["interestflow_ui"]
    assert [a["url_prefix"] for a in ours["fastapi_apps"]] == ["/interestflow"]
    (view,) = ours["external_views"]
    assert view["url_route"] == "interestflow" and view["destination"] == "nav" and view["href"] == "/interestflow/"
    errors = c.get("/api/v2/plugins/importErrors").json()
    assert not [e for e in errors.get("import_errors", []) if "interestflow" in json.dumps(e)]


def test_anonymous_is_refused_and_a_login_opens_the_page(airflow_app, login):
    anon = TestClient(airflow_app)
    assert anon.get("/interestflow/api/models").status_code == 401
    redirect = anon.get("/interestflow/", follow_redirects=False)
    assert redirect.status_code == 307 and redirect.headers["location"].startswith("/auth/login")
    c = TestClient(airflow_app)
    c.cookies.set("_token", login)
    page = c.get("/interestflow/")
    assert page.status_code == 200 and "static/charts.js" in page.text


def test_user_lookup_through_airflow_shows_the_published_top_k(airflow_app, login, pipeline_warehouse):
    from ml.registry import Registry

    wh = pipeline_warehouse
    first = wh.query("select min(user_id) as u from serving.recommendations_current")["u"].iloc[0]
    want = wh.query(
        "select item_id, reason from serving.recommendations_current where user_id = ? order by rank", [first]
    )
    c = TestClient(airflow_app, headers={"Authorization": f"Bearer {login}"})
    body = c.get(f"/interestflow/api/users/{first}?k=100").json()
    items = body["recommendations"]["items"]
    assert [r["item_id"] for r in items] == want["item_id"].tolist()
    assert [r["reason"] for r in items] == want["reason"].tolist()
    assert body["behaviour"]["available"] and body["behaviour"]["recent"]
    models = c.get("/interestflow/api/models?family=recommender").json()
    (rec,) = models["families"]
    assert rec["champion"]["version_id"] == Registry(wh).champion("recommender")["version_id"]
    assert c.get("/interestflow/api/users/U9999999").json()["detail"] == "no such user: U9999999"


def test_the_assistant_answers_through_airflow_and_refuses_bad_questions_with_a_reason(
    airflow_app, login, pipeline_warehouse
):
    wh = pipeline_warehouse
    user = wh.query("select min(user_id) as u from marts.interactions")["u"].iloc[0]
    leaf = wh.query("select category_l3 as c from marts.item_features order by item_id limit 1")["c"].iloc[0]
    c = TestClient(airflow_app, headers={"Authorization": f"Bearer {login}"})
    res = c.post("/interestflow/api/assistant", json={"user_id": user, "question": f"{leaf} please", "k": 3})
    assert res.status_code == 200, res.text
    body = res.json()
    assert 1 <= len(body["items"]) <= 3 and body["understood"] == [f"category {leaf}"]
    assert all(i["category"] == leaf and i["why"].endswith(".") for i in body["items"])
    # the kept assistant answers the next questions too, each read through its own request
    other = wh.query("select max(user_id) as u from marts.interactions")["u"].iloc[0]
    for who in (user, other):
        again = c.post("/interestflow/api/assistant", json={"user_id": who, "question": f"{leaf}", "k": 2})
        assert again.status_code == 200 and 1 <= len(again.json()["items"]) <= 2, again.text
    bad = {
        "": 400,
        "x" * 10_000: 413,
        "tents over 300 under 100": 422,
        "wasserdichte Wanderschuhe": 422,
    }
    for question, status in bad.items():
        r = c.post("/interestflow/api/assistant", json={"user_id": user, "question": question})
        assert r.status_code == status and r.json()["detail"], (question[:20], r.status_code, r.text)
    assert c.post("/interestflow/api/assistant", json={"user_id": "no spaces!", "question": "tents"}).status_code == 400
    assert c.post("/interestflow/api/assistant", json={"user_id": user, "question": "tents", "k": 0}).status_code == 422
    assert (
        TestClient(airflow_app).post("/interestflow/api/assistant", json={"user_id": user, "question": "x"}).status_code
        == 401
    )
    # the user lookup shows the reviews as the review model read them
    reviewer = wh.query("select min(user_id) as u from ml.review_sentiment")["u"].iloc[0]
    reviews = c.get(f"/interestflow/api/users/{reviewer}").json()["reviews"]
    assert reviews["available"] and reviews["items"][0]["label"] in {"negative", "neutral", "positive"}
    # with each review's sentences about an aspect and their tone, which the marts sum up per item
    aspects = wh.query(
        "select r.user_id, a.* from ml.review_aspects as a join ml.review_sentiment as r using (event_id)"
    )
    assert len(aspects) and set(aspects["aspect"]) <= {"quality", "fit", "delivery", "value", "looks"}
    user = aspects["user_id"].min()
    shown = c.get(f"/interestflow/api/users/{user}").json()["reviews"]["items"]
    mine = aspects[aspects["user_id"] == user]
    listed = {(r["event_id"], a["aspect"]) for r in shown for a in r["aspects"]}
    assert listed and listed <= set(zip(mine["event_id"], mine["aspect"], strict=True))
    mart = wh.query("select * from marts.item_review_aspects").set_index(["item_id", "aspect"]).sort_index()
    per_item = aspects.groupby(["item_id", "aspect"])["sentiment"].agg(["size", "mean"])
    assert mart["n_mentions"].tolist() == per_item["size"].tolist()
    assert mart["aspect_sentiment"].to_numpy() == pytest.approx(per_item["mean"].to_numpy())
