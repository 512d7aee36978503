"""The plugin's FastAPI app: Airflow authentication, input validation, and the JSON endpoints the
page draws from (FastAPI test client, real Airflow auth manager, real DuckDB warehouse)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

# the session's generated JWT secret is short; Airflow warns on every token (not what these tests check)
pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore:The HMAC key is")]

DATA_ROUTES = [
    "/api/status",
    "/api/models",
    "/api/quality",
    "/api/exploration",
    "/api/campaigns",
    "/api/users",
    "/api/users/{user}",
    "/api/openapi.json",
    "/static/app.js",
    "/data-docs/ui-tests/data_docs/local_site/index.html",
]


@pytest.fixture()
def app(built_app):
    return built_app[0]


@pytest.fixture()
def built(built_app):
    return built_app[1]


@pytest.fixture()
def anon(app, auth_manager) -> TestClient:
    return TestClient(app)


@pytest.fixture()
def client(app, tokens) -> TestClient:
    """Logged in the way the Airflow UI is: the JWT in the ``_token`` cookie."""
    c = TestClient(app)
    c.cookies.set("_token", tokens["admin"])
    return c


def _route(path: str, built) -> str:
    return path.replace("{user}", built.recommendations["user_id"].iloc[0])


@pytest.mark.parametrize("path", DATA_ROUTES)
def test_anonymous_requests_to_endpoints_are_refused(anon, built, path):
    res = anon.get(_route(path, built))
    assert res.status_code == 401
    assert res.json() == {"detail": "Not authenticated"}


def test_anonymous_page_request_goes_to_airflow_login_and_gets_no_page(anon):
    res = anon.get("/?user=U0000001", follow_redirects=False)
    assert res.status_code == 307
    assert res.headers["location"].startswith("/auth/login?next=")
    assert "%2F%3Fuser%3DU0000001" in res.headers["location"]
    assert "<html" not in res.text


@pytest.mark.parametrize("which", ["expired", "garbage"])
def test_invalid_or_expired_tokens_are_refused(app, tokens, built, which):
    token = tokens["expired"] if which == "expired" else "not.a.jwt"
    c = TestClient(app)
    res = c.get("/api/models", headers={"Authorization": f"Bearer {token}"})
    assert res.status_code in (401, 403)
    c.cookies.set("_token", token)
    assert c.get(_route("/api/users/{user}", built)).status_code in (401, 403)
    assert c.get("/", follow_redirects=False).status_code == 307


def test_a_user_without_any_role_is_forbidden(app, tokens):
    c = TestClient(app)
    c.cookies.set("_token", tokens["no_role"])
    assert c.get("/api/status").status_code == 403
    assert c.get("/").status_code == 403


@pytest.mark.parametrize("who", ["admin", "viewer"])
def test_logged_in_users_read_the_page_and_data(app, tokens, who):
    cookie = TestClient(app)
    cookie.cookies.set("_token", tokens[who])
    assert cookie.get("/api/status").status_code == 200
    bearer = TestClient(app, headers={"Authorization": f"Bearer {tokens[who]}"})
    assert bearer.get("/api/models").status_code == 200


def test_page_ships_its_own_scripts_and_styles_no_cdn(client):
    from interestflow_ui.app import STATIC_DIR

    res = client.get("/")
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/html")
    refs = re.findall(r'(?:src|href)="([^"#]+)"', res.text)
    assert refs and all(r.startswith("static/") for r in refs), refs
    for ref in refs:
        asset = client.get("/" + ref)
        assert asset.status_code == 200, ref
        assert asset.content == (STATIC_DIR / ref.removeprefix("static/")).read_bytes()
    for js in ("static/app.js", "static/charts.js"):
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", client.get("/" + js).text), js
    assert client.get("/static/..%2Fapp.py").status_code == 404
    assert client.get("/static/missing.js").status_code == 404


@pytest.mark.parametrize("bad", ["U%201", "U1%3Bdrop%20table%20x", "x" * 65, "%C3%9C1", "-U1", "U1'"])
def test_bad_user_ids_get_a_400_naming_the_rule(client, bad):
    res = client.get(f"/api/users/{bad}")
    assert res.status_code == 400
    assert res.json()["detail"].startswith("invalid user id")


def test_unknown_user_gets_404_no_such_user(client):
    res = client.get("/api/users/U9999999")
    assert res.status_code == 404
    assert res.json() == {"detail": "no such user: U9999999", "user_id": "U9999999"}


@pytest.mark.parametrize(
    "path", ["/api/users/U1?k=0", "/api/users/U1?k=101", "/api/quality?limit=0", "/api/exploration?days=x"]
)
def test_out_of_range_parameters_are_rejected(client, path):
    assert client.get(path).status_code == 422


def test_bad_prefix_and_family_get_400(client):
    assert client.get("/api/users?prefix=a%20b").status_code == 400
    assert client.get("/api/models?family=Not-A-Family").status_code == 400


def test_user_endpoint_returns_the_published_top_k_with_reasons(client, built):
    uid = built.profiles["user_id"].iloc[0]
    res = client.get(f"/api/users/{uid}?k=5")
    assert res.status_code == 200 and res.headers["cache-control"] == "no-store"
    body = res.json()
    want = built.recommendations[built.recommendations["user_id"] == uid].sort_values("rank").head(5)
    assert [r["item_id"] for r in body["recommendations"]["items"]] == want["item_id"].tolist()
    assert [r["reason"] for r in body["recommendations"]["items"]] == want["reason"].tolist()
    assert body["source"]["kind"] == "duckdb" and body["source"]["read_from"] == "snapshot"
    assert body["profile"]["known"] and body["profile"]["candidate"]


def test_sections_answer_json(client, built):
    models = client.get("/api/models").json()
    assert {f["family"]: f["champion"]["version_id"] for f in models["families"] if f["champion"]} == built.champions
    quality = client.get("/api/quality").json()
    docs = quality["gates"]["gates"][0]["runs"][0]["data_docs_url"]
    page = client.get("/" + docs)
    assert page.status_code == 200 and page.text == built.docs_file.read_text()
    assert client.get("/data-docs/ui-tests/..%2F..%2Fwarehouse.duckdb").status_code in (400, 404)
    exploration = client.get("/api/exploration?days=30").json()
    assert exploration["estimates"]["available"] and exploration["ctr"]["days"]
    users = client.get("/api/users?prefix=U&limit=3").json()
    assert users["users"] == sorted(built.recommendations["user_id"].unique())[:3]


def test_the_assistant_says_what_is_missing_before_items_are_embedded(client):
    res = client.post("/api/assistant", json={"user_id": "U0000001", "question": "tents"})
    assert res.status_code == 200
    body = res.json()
    assert body["available"] is False and "ml.item_embeddings" in body["message"]
    assert client.post("/api/assistant", json={"user_id": "U0000001"}).status_code == 422  # no question at all


def test_openapi_documents_every_json_endpoint(client):
    doc = client.get("/api/openapi.json").json()
    assert set(doc["paths"]) == {
        "/api/assistant",
        "/api/status",
        "/api/models",
        "/api/quality",
        "/api/exploration",
        "/api/campaigns",
        "/api/users",
        "/api/users/{user_id}",
    }
    params = {p["name"] for p in doc["paths"]["/api/users/{user_id}"]["get"]["parameters"]}
    assert {"user_id", "k", "recent"} <= params


def test_no_warehouse_yet_is_a_503_with_a_hint(tmp_path, tokens):
    from interestflow_ui.app import create_app
    from ml.ui.reader import WarehouseReader
    from ml.warehouse import Warehouse

    app = create_app(WarehouseReader(Warehouse(f"duckdb:///{tmp_path / 'none.duckdb'}"), snapshot_dir=tmp_path))
    c = TestClient(app)
    c.cookies.set("_token", tokens["admin"])
    res = c.get("/api/models")
    assert res.status_code == 503 and "make demo" in res.json()["detail"]
    assert res.headers["retry-after"] == "5"
