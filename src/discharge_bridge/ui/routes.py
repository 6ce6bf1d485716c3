"""All page routers and the static files, mounted on the app in one call."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from discharge_bridge.ui import access, board, contacts, coordinator, it, signin

STATIC_DIR = Path(__file__).parent / "static"
ROUTERS = [signin.router, board.router, it.router, coordinator.router, contacts.router, access.router]


def mount_ui(app: FastAPI) -> None:
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
