"""The web application: health checks (open) and the versioned API (token required)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

from discharge_bridge import __version__
from discharge_bridge.cases.barrier_routes import router as barriers_router
from discharge_bridge.cases.routes import router as cases_router
from discharge_bridge.config import Settings, get_settings
from discharge_bridge.db import get_engine
from discharge_bridge.handoffs.routes import router as handoffs_router
from discharge_bridge.sources.routes import router as sources_router
from discharge_bridge.tasks.routes import router as tasks_router
from discharge_bridge.ui.routes import mount_ui
from discharge_bridge.worklists.routes import router as worklist_router


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(
        title="discharge_bridge",
        version=__version__,
        description="Discharge coordination over a hospital's FHIR R4 server.",
    )
    app.state.settings = settings or get_settings()

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        """The database answers."""
        try:
            with get_engine(app.state.settings).connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # any failure means not ready; say which kind, not the DSN
            return JSONResponse({"status": "unavailable", "database": type(exc).__name__}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok"})

    app.include_router(sources_router)
    app.include_router(worklist_router)
    app.include_router(cases_router)
    app.include_router(barriers_router)
    app.include_router(tasks_router)
    app.include_router(handoffs_router)
    mount_ui(app)
    return app
