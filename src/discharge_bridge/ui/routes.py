"""All page routers and the static files (and the favicon browsers ask for at /favicon.ico), mounted
on the app in one call."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request

from discharge_bridge.ui import (
    access,
    board,
    contacts,
    coordinator,
    directory,
    figures,
    it,
    it_writeback,
    launch,
    portal,
    psychology,
    referrals,
    screening,
    services_delivered,
    signin,
)

STATIC_DIR = Path(__file__).parent / "static"
ROUTERS = [
    signin.router,
    board.router,
    it.router,
    it_writeback.router,
    coordinator.router,
    contacts.router,
    access.router,
    referrals.router,
    figures.router,
    services_delivered.router,
    screening.router,
    portal.router,
    psychology.router,
    directory.router,
    launch.router,
]


def favicon(request: Request) -> FileResponse:
    """Open, like the static files: a browser asks for it before anyone signs in."""
    icon = STATIC_DIR / "favicon.ico"
    return FileResponse(icon, media_type="image/x-icon", headers={"Cache-Control": "max-age=86400"})


def mount_ui(app: FastAPI) -> None:
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_route("/favicon.ico", favicon, methods=["GET"], include_in_schema=False)
