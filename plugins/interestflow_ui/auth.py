"""Airflow's own authentication for the plugin app.

The Airflow UI keeps its JWT in the ``_token`` cookie (API clients send ``Authorization: Bearer``);
``airflow.api_fastapi.core_api.security.get_user`` validates either one with the configured auth
manager. A user must also be allowed to see the Airflow website (``AccessView.WEBSITE``).
Airflow modules are imported inside the functions: the plugin module is loaded by every Airflow
component, and only the api-server ever calls these.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

bearer = HTTPBearer(auto_error=False, description="An Airflow API JWT (POST /auth/token), or the UI's _token cookie.")


async def _authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Any:
    """The Airflow user of this request; raises 401 (anonymous, expired) or 403 (invalid token)."""
    from airflow.api_fastapi.core_api.security import get_user

    return await get_user(request, None, credentials)


def _authorized(user: Any) -> bool:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView

    return bool(get_auth_manager().is_authorized_view(access_view=AccessView.WEBSITE, user=user))


async def require_viewer(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Any:
    """FastAPI dependency for JSON endpoints: the user, or 401/403."""
    user = await _authenticate(request, credentials)
    if not _authorized(user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden: you may not view the Airflow website")
    return user


async def page_user(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Any:
    """For HTML pages: the authorised user, or None when the request is anonymous or its token is
    invalid (the page then redirects to Airflow's login). Raises 403 for a user without access."""
    try:
        user = await _authenticate(request, credentials)
    except HTTPException:
        return None
    if not _authorized(user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden: you may not view the Airflow website")
    return user


def login_url(request: Request) -> str:
    """Airflow's login page, coming back to the requested path afterwards."""
    from airflow.api_fastapi.app import get_auth_manager

    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return str(get_auth_manager().get_url_login(next_url=target))
