"""Airflow plugin: the Interestflow page (models, data quality, exploration, user lookup).

Mounts the FastAPI app of ``interestflow_ui`` at ``/interestflow`` in the api-server and adds an
"Interestflow" entry to the Airflow UI navigation, which shows the page inside the UI
(``/plugin/interestflow``). See ``docs/ui.md``.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import urlsplit

from airflow.configuration import conf
from airflow.plugins_manager import AirflowPlugin

from interestflow_ui.app import URL_PREFIX, create_app

_ROOT = urlsplit(conf.get("api", "base_url", fallback="") or "/").path.rstrip("/")


class InterestflowUIPlugin(AirflowPlugin):
    name = "interestflow_ui"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [
        {"app": create_app(), "url_prefix": URL_PREFIX, "name": "Interestflow"}
    ]
    external_views: ClassVar[list[dict[str, Any]]] = [
        {
            "name": "Interestflow",
            "href": f"{_ROOT}{URL_PREFIX}/",
            "url_route": "interestflow",
            "destination": "nav",
            "icon": f"{_ROOT}{URL_PREFIX}/static/icon.svg",
            "nav_top_level": True,
        }
    ]
