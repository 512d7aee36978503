"""The FastAPI app the Interestflow plugin mounts at ``/interestflow`` in Airflow's api-server.

``GET /`` is the page (HTML + ``static/`` JS/CSS shipped here, no CDN); ``/api/*`` are the JSON
endpoints the page draws from (documented in ``docs/ui.md``; OpenAPI at ``/api/openapi.json``).
Every route needs an Airflow login: JSON routes answer 401/403, the page redirects to Airflow's
login. Data access lives in ``ml.ui`` (imported lazily: every Airflow component loads plugins).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from interestflow_ui.auth import login_url, page_user, require_viewer
from ml.assistant.query import QuestionError
from ml.ui.errors import BadInput, NoSuchUser, WarehouseUnavailable

URL_PREFIX = "/interestflow"
STATIC_DIR = Path(__file__).resolve().parent / "static"
_STATIC_NAME = re.compile(r"^[a-z0-9_-]+\.(js|css|svg|html)$")
_MEDIA = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".html": "text/html"}
NO_STORE = {"Cache-Control": "no-store"}
_reader_lock = threading.Lock()

DESCRIPTION = """JSON endpoints behind the Interestflow page in the Airflow UI.

Authenticate like the Airflow API: the UI's `_token` cookie or `Authorization: Bearer <JWT>`
(`POST /auth/token`). Anonymous requests get 401, invalid tokens 403. Every answer carries
`source` (DuckDB snapshot or live PostgreSQL, and whether the snapshot is stale); optional
tables that do not exist yet come back as `{"available": false, "message": ...}`.
"""


class AssistantQuestion(BaseModel):
    """A shopper's question to the assistant."""

    user_id: str = Field(
        ..., description="The shopper (personalises the answer; unknown users get an unpersonalised one)"
    )
    question: str = Field(..., description='e.g. "waterproof hiking boots under 120" (at most 500 characters)')
    k: int = Field(5, ge=1, le=50, description="Items in the answer")


def _reader(request: Request) -> Any:
    state = request.app.state
    if state.reader is None:
        with _reader_lock:
            if state.reader is None:
                from ml.ui.reader import WarehouseReader

                state.reader = WarehouseReader.from_env()
    return state.reader


def _answer(request: Request, build: Callable[..., dict[str, Any]], *args: Any) -> JSONResponse:
    with _reader(request).session() as rs:
        return JSONResponse(build(rs, *args), headers=NO_STORE)


def create_app(reader: Any = None) -> FastAPI:
    """The plugin app. ``reader`` (an ``ml.ui.reader.WarehouseReader``) defaults to one built from
    the environment on the first request."""
    app = FastAPI(
        title="Interestflow UI",
        version="1.0",
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.reader = reader
    api = APIRouter(prefix="/api", tags=["interestflow"], dependencies=[Depends(require_viewer)])

    @api.get("/status", summary="Which contract tables exist and where rows are read from")
    def get_status(request: Request) -> JSONResponse:
        from ml.ui import views

        return _answer(request, views.status)

    @api.get("/models", summary="Champion and challengers per model family, metrics and gate decisions")
    def get_models(
        request: Request,
        family: str | None = Query(None, description="recommender, tagger or policy (default: all)", max_length=32),
        limit: int = Query(200, ge=1, le=5000, description="Newest versions and decisions to return"),
    ) -> JSONResponse:
        from ml.ui import views

        return _answer(request, views.models, family, limit)

    @api.get("/quality", summary="Last runs of each data-quality gate, quarantine reasons, ingest batches")
    def get_quality(
        request: Request, limit: int = Query(10, ge=1, le=200, description="Runs per gate and batches")
    ) -> JSONResponse:
        from ml.ui import views

        return _answer(request, views.quality, limit)

    @api.get("/exploration", summary="Serving policy, budget, OPE estimates with CIs, exploration CTR per day")
    def get_exploration(
        request: Request, days: int = Query(90, ge=1, le=3650, description="Days of click-through history")
    ) -> JSONResponse:
        from ml.ui import views

        return _answer(request, views.exploration, days)

    @api.get("/campaigns", summary="Campaign windows with their latest uplift report and ROAS")
    def get_campaigns(request: Request) -> JSONResponse:
        from ml.ui import views

        return _answer(request, views.campaigns)

    @api.get("/users", summary="User ids starting with a prefix (for the lookup box)")
    def get_users(
        request: Request,
        prefix: str = Query("", max_length=64, description="Start of the user id"),
        limit: int = Query(20, ge=1, le=200),
    ) -> JSONResponse:
        from ml.ui import views

        return _answer(request, views.users, prefix, limit)

    @api.get(
        "/users/{user_id}",
        summary="One user: interest profile, recent behaviour, current top-k",
        responses={400: {"description": "Invalid user id"}, 404: {"description": "No such user"}},
    )
    def get_user_view(
        request: Request,
        user_id: str,
        k: int = Query(10, ge=1, le=100, description="Recommendations to show"),
        recent: int = Query(20, ge=1, le=500, description="Recent events to show"),
    ) -> JSONResponse:
        from ml.ui import views

        return _answer(request, views.user, user_id, k, recent)

    @api.post(
        "/assistant",
        summary="The shopping assistant: k items for a question, each with one sentence of facts",
        responses={
            400: {"description": "Empty question or invalid user id"},
            413: {"description": "Question too long"},
            422: {"description": "Contradictory constraints, or no word the catalogue knows"},
        },
    )
    def post_assistant(request: Request, body: AssistantQuestion) -> JSONResponse:
        from ml.ui import views

        return _answer(request, views.assistant, body.user_id, body.question, body.k)

    @api.get("/openapi.json", summary="This API's OpenAPI document", include_in_schema=False)
    def get_openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    app.include_router(api)

    @app.get("/", include_in_schema=False, response_model=None)
    def page(request: Request, user: Any = Depends(page_user)) -> Response:
        if user is None:
            return RedirectResponse(login_url(request), status_code=307)
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=NO_STORE)

    @app.get("/static/{name}", include_in_schema=False, dependencies=[Depends(require_viewer)])
    def static(name: str) -> Response:
        path = STATIC_DIR / name
        if not _STATIC_NAME.fullmatch(name) or not path.is_file():
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(path, media_type=_MEDIA[path.suffix], headers={"Cache-Control": "private, max-age=60"})

    @app.get("/data-docs/{rel_path:path}", include_in_schema=False, dependencies=[Depends(require_viewer)])
    def data_docs(rel_path: str) -> Response:
        from ml.ui.views import data_docs_file

        return FileResponse(data_docs_file(rel_path))

    @app.exception_handler(BadInput)
    def _bad_input(request: Request, exc: BadInput) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(QuestionError)
    def _bad_question(request: Request, exc: QuestionError) -> JSONResponse:
        return JSONResponse({"detail": exc.reason}, status_code=exc.status)

    @app.exception_handler(NoSuchUser)
    def _no_such_user(request: Request, exc: NoSuchUser) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "user_id": exc.user_id}, status_code=404)

    @app.exception_handler(FileNotFoundError)
    def _no_file(request: Request, exc: FileNotFoundError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(WarehouseUnavailable)
    def _unavailable(request: Request, exc: WarehouseUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "5"})

    return app
