"""The web application: health checks (open); the API, the pages, /metrics and the docs (signed in)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import text
from sqlmodel import Session

from discharge_bridge import __version__, metrics
from discharge_bridge.cases.barrier_routes import router as barriers_router
from discharge_bridge.cases.routes import router as cases_router
from discharge_bridge.clock import start_from_environment
from discharge_bridge.config import Settings, get_settings
from discharge_bridge.db import get_engine, utcnow
from discharge_bridge.deps import CurrentPrincipal
from discharge_bridge.errors import install_error_handlers
from discharge_bridge.handoffs.routes import router as handoffs_router
from discharge_bridge.scheduling.models import SchedulerLease
from discharge_bridge.sources.routes import router as sources_router
from discharge_bridge.subscriptions.routes import router as webhooks_router
from discharge_bridge.tasks.routes import router as tasks_router
from discharge_bridge.ui.routes import mount_ui
from discharge_bridge.worklists.routes import router as worklist_router


def create_app(settings: Settings | None = None) -> FastAPI:
    start_from_environment()  # tests move the server's wall clock through one setting (clock.py)
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
    app.include_router(worklist_router)
    app.include_router(cases_router)
    app.include_router(barriers_router)
    app.include_router(tasks_router)
    app.include_router(handoffs_router)
    install_error_handlers(app)
    mount_ui(app)
    metrics.install(app)
    add_docs(app)
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
            lease = session.get(SchedulerLease, metrics.SCHEDULER_LEASE)
    except Exception as exc:  # e.g. a schema not yet migrated: the database answers, the lease cannot be read
        return {**body, "status": "unavailable", "scheduler": "unknown", "error": type(exc).__name__}
    if lease is None:
        body["scheduler"] = "missing"
    else:
        age = max((now - lease.heartbeat_at).total_seconds(), 0.0)
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
