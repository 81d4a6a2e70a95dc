"""The coverage page in Airflow 3's UI: a FastAPI app at ``/mdca``, linked from the navigation's *Plugins* menu.

``GET /mdca/coverage`` is the page (per tenant and service a strip of the windows of the last ``days`` days coloured
by state, each linked to its run, with totals and freshness) and ``GET /mdca/coverage.json`` the same as the JSON
document of :meth:`airflow_provider_mdca.coverage.model.Coverage.as_dict` (what ``mdca-collector status --json``
prints); both take ``?days=N`` (1 to 90, default 7). Both need an Airflow user: the UI's session cookie (same origin)
or ``Authorization: Bearer <JWT>``, as the REST API; a request without one is refused (401; 403 for an invalid token)
and a user sees only the DAGs the auth manager lets them read (403 when none).

The collector config is the one ``mdca-collector`` reads (``$MDCA_COLLECTOR_CONFIG``, else ``mdca_collector.yaml``
in the DAGs folder), read on each request. The app is built on its first request: every Airflow process loads
plugins (a task too), and none but the api-server should pay for importing FastAPI and Airflow's API security.

Airflow 2.11 has no FastAPI app server: there the plugin is empty and loads harmlessly; the coverage is
``mdca-collector status`` (and ``--json``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_mdca._compat import AIRFLOW_V3

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["NAV_JSON_NAME", "NAV_NAME", "URL_PREFIX", "LazyApp", "MdcaCoveragePlugin", "create_app"]

#: Where the app is mounted on the api-server.
URL_PREFIX: Final = "/mdca"
NAV_NAME: Final = "MDCA coverage"
NAV_JSON_NAME: Final = "MDCA coverage (JSON)"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class LazyApp:
    """An ASGI app that builds the real one (``factory()``) on its first request."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._app: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            self._app = self._factory()
        await self._app(scope, receive, send)


def create_app() -> FastAPI:
    """The FastAPI app: ``/coverage`` (HTML) and ``/coverage.json``, for users allowed to read the DAGs shown."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import Depends, FastAPI, HTTPException, Query
    from fastapi.responses import HTMLResponse

    from airflow_provider_mdca.cli import config_path
    from airflow_provider_mdca.config import load_collector_config
    from airflow_provider_mdca.coverage import DEFAULT_DAYS, Coverage
    from airflow_provider_mdca.coverage.airflow_db import read_coverage
    from airflow_provider_mdca.coverage.model import MAX_DAYS
    from airflow_provider_mdca.coverage.render import render_html
    from airflow_provider_mdca.errors import InitVariablesError

    app = FastAPI(title=NAV_NAME, docs_url=None, redoc_url=None, openapi_url=None)

    # This module's annotations are strings (``from __future__ import annotations``) that FastAPI resolves in the
    # module's globals, where these local imports are not: the dependencies are declared by ``Depends`` alone.
    def readable_dag_ids(user: Any = Depends(get_user)) -> set[str]:  # noqa: B008 - FastAPI's declaration
        """The DAG ids the user may read (authenticates the request: 401/403 without a valid token)."""
        return set(get_auth_manager().get_authorized_dag_ids(user=user, method="GET"))

    def coverage(
        readable: Any = Depends(readable_dag_ids),  # noqa: B008
        days: int = Query(DEFAULT_DAYS, ge=1, le=MAX_DAYS),
    ) -> Coverage:
        try:
            config = load_collector_config(config_path(None))
        except InitVariablesError as exc:  # names the file and the keys; the file holds no secret
            raise HTTPException(status_code=503, detail=str(exc)) from None
        shown = [service for service in config.dag_configs if service.dag_id in readable]
        if config.dag_configs and not shown:
            raise HTTPException(status_code=403, detail="Forbidden: no collector DAG is readable by this user")
        return read_coverage(shown, days)

    @app.get("/coverage", response_class=HTMLResponse, response_model=None)
    def page(view: Any = Depends(coverage)) -> HTMLResponse:  # noqa: B008
        return HTMLResponse(render_html(view), headers=_PAGE_HEADERS)

    @app.get("/coverage.json")
    def document(view: Any = Depends(coverage)) -> dict[str, Any]:  # noqa: B008
        shown: Coverage = view
        return shown.as_dict()

    return app


#: The page loads nothing from elsewhere and runs no script; it may be framed only by the UI itself.
_PAGE_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _base_path() -> str:
    """The path the api-server is served under (``[api] base_url``'s), for the navigation link."""
    from airflow.configuration import conf

    # Read here, not through coverage.airflow_db.ui_base_url: loading the plugin must not import the database reader.
    return urlsplit(str(conf.get("api", "base_url", fallback="") or "")).path.rstrip("/")


class MdcaCoveragePlugin(AirflowPlugin):
    """The coverage page and its JSON on Airflow 3's api-server, and links to both in the navigation.

    The links open in a tab of their own (external views without ``url_route``): inside the UI's sandboxed frame a
    window's link could not open its run in the UI itself. They are two on purpose: Airflow 3.3's navigation shows a
    lone plugin entry as a sidebar button that does not follow its link (a ``<button href>``); two or more go under
    its *Plugins* menu, as real links. Empty on Airflow 2.11.
    """

    name = "mdca_coverage"
    if AIRFLOW_V3:
        fastapi_apps = [{"app": LazyApp(create_app), "url_prefix": URL_PREFIX, "name": NAV_NAME}]
        external_views = [
            {"name": NAV_NAME, "href": f"{_base_path()}{URL_PREFIX}/coverage", "destination": "nav"},
            {"name": NAV_JSON_NAME, "href": f"{_base_path()}{URL_PREFIX}/coverage.json", "destination": "nav"},
        ]
