"""The web application: health checks (open); the API, the pages, /metrics and the docs (signed in).

Errors are answered by the app's exception handlers (``install_error_handlers``), a page route's
as a page, everything else as the API's JSON. Starlette runs them after the route's dependencies
have unwound, so the request's session has rolled back first: a refused change never commits
half of itself. That is why errors are answered here and not inside a route's handler.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import text
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session

from discharge_bridge import __version__
from discharge_bridge.api import metrics
from discharge_bridge.api.access import router as access_router
from discharge_bridge.api.audit import router as audit_router
from discharge_bridge.api.barriers import router as barriers_router
from discharge_bridge.api.cases import router as cases_router
from discharge_bridge.api.cds import router as cds_router
from discharge_bridge.api.consent import router as consent_router
from discharge_bridge.api.contacts import router as contacts_router
from discharge_bridge.api.directory import router as directory_router
from discharge_bridge.api.directory import suggestions_router
from discharge_bridge.api.figures import router as figures_router
from discharge_bridge.api.handoffs import router as handoffs_router
from discharge_bridge.api.headers import SecurityHeaders
from discharge_bridge.api.portal import router as portal_router
from discharge_bridge.api.psychology import router as psychology_router
from discharge_bridge.api.referrals import router as referrals_router
from discharge_bridge.api.screening import router as screening_router
from discharge_bridge.api.services_delivered import router as services_delivered_router
from discharge_bridge.api.sources import router as sources_router
from discharge_bridge.api.tasks import router as tasks_router
from discharge_bridge.api.webhooks import router as webhooks_router
from discharge_bridge.api.worklists import router as worklist_router
from discharge_bridge.api.writeback import router as writeback_router
from discharge_bridge.cases.errors import CoordinationError
from discharge_bridge.clock import start_from_environment
from discharge_bridge.config import Settings, get_settings
from discharge_bridge.db import get_engine, private_files, utcnow
from discharge_bridge.deps import CurrentPrincipal
from discharge_bridge.scheduling.leader import heartbeat_age
from discharge_bridge.ui.routes import mount_ui
from discharge_bridge.ui.templating import PageRoute

STALE_BODY = {"detail": "the record was changed by someone else at the same time; reload and retry"}


def create_app(settings: Settings | None = None) -> FastAPI:
    start_from_environment()  # tests move the server's wall clock through one setting (clock.py)
    private_files()  # umask 0o077: whatever the web process writes is its user's only
    app = FastAPI(
        title="discharge_bridge",
        version=__version__,
        description="Discharge coordination over a hospital's FHIR R4 server.",
        # FastAPI serves these without sign-in; add_docs serves them to signed-in callers only.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings or get_settings()

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        """The database answers and the scheduler's heartbeat is fresh; 503 names the part that fails."""
        body = readiness(app.state.settings, utcnow())
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    app.include_router(sources_router)
    app.include_router(webhooks_router)  # authenticates by the per-source webhook secret
    app.include_router(cds_router)  # CDS Hooks: the EHR's signed JWT (ehr/cds/auth.py); discovery is open
    app.include_router(worklist_router)
    app.include_router(cases_router)
    app.include_router(barriers_router)
    app.include_router(screening_router)
    app.include_router(tasks_router)
    app.include_router(handoffs_router)
    app.include_router(referrals_router)
    app.include_router(consent_router)
    app.include_router(contacts_router)
    app.include_router(access_router)
    app.include_router(audit_router)
    app.include_router(directory_router)
    app.include_router(suggestions_router)
    app.include_router(figures_router)
    app.include_router(writeback_router)
    app.include_router(services_delivered_router)
    app.include_router(portal_router)
    app.include_router(psychology_router)
    install_error_handlers(app)
    mount_ui(app)
    metrics.install(app)
    add_docs(app)
    app.add_middleware(SecurityHeaders)
    return app


def readiness(settings: Settings, now: datetime) -> dict[str, Any]:
    """``database``: ok / unreachable; ``scheduler``: ok / stale / missing (no heartbeat row) / unknown."""
    engine = get_engine(settings)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means not ready; say which kind, never the DSN
        return {"status": "unavailable", "database": "unreachable", "error": type(exc).__name__, "scheduler": "unknown"}
    body: dict[str, Any] = {"status": "ok", "database": "ok", "scheduler": "ok"}
    try:
        with Session(engine) as session:
            age = heartbeat_age(session, now)
    except Exception as exc:  # e.g. a schema not yet migrated: the database answers, the lease cannot be read
        return {**body, "status": "unavailable", "scheduler": "unknown", "error": type(exc).__name__}
    if age is None:
        body["scheduler"] = "missing"
    else:
        body["scheduler_heartbeat_age_seconds"] = round(age, 1)
        if age > settings.scheduler_stale_seconds:
            body["scheduler"] = "stale"
    if body["scheduler"] != "ok":
        body["status"] = "unavailable"
    return body


def add_docs(app: FastAPI) -> None:
    """OpenAPI, Swagger UI and ReDoc for signed-in callers (a browser's session cookie works)."""

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(principal: CurrentPrincipal) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    def swagger(request: Request, principal: CurrentPrincipal) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=_root(request) + "/openapi.json", title=f"{app.title} - API")

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request, principal: CurrentPrincipal) -> HTMLResponse:
        return get_redoc_html(openapi_url=_root(request) + "/openapi.json", title=f"{app.title} - API")


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


async def _coordination_json(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CoordinationError)
    return JSONResponse(exc.body(), status_code=exc.status_code)


class _Json(JSONResponse):
    """JSON as UTF-8, or as ASCII with escapes when a value has no UTF-8 (a lone surrogate echoed back)."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


async def _validation_json(_request: Request, exc: Exception) -> Response:
    # FastAPI's own 422 body (``detail[].loc`` names the field), which echoes the refused ``input``.
    assert isinstance(exc, RequestValidationError)
    return _Json({"detail": jsonable_encoder(exc.errors())}, status_code=422)


async def _stale_json(_request: Request, _exc: Exception) -> Response:
    # Two writers passed the version check at the same moment; the database refused the second.
    return JSONResponse(STALE_BODY, status_code=409)


Handler = Callable[[Request, Any], Awaitable[Response]]


def _pages_or(api_handler: Handler) -> Handler:
    """A page route's error as its page; any other route's through ``api_handler``."""

    async def handle(request: Request, exc: Exception) -> Response:
        route = request.scope.get("route")
        if isinstance(route, PageRoute):
            return route.error_response(request, exc)
        return await api_handler(request, exc)

    return handle


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, _pages_or(http_exception_handler))
    app.add_exception_handler(RequestValidationError, _pages_or(_validation_json))
    app.add_exception_handler(CoordinationError, _pages_or(_coordination_json))
    app.add_exception_handler(StaleDataError, _pages_or(_stale_json))
