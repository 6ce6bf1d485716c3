"""A page route's errors become pages only after the request's session has rolled back."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from discharge_bridge.app import install_error_handlers
from discharge_bridge.cases.errors import InvalidInput
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.deps import SessionDep
from discharge_bridge.sources.models import Source
from discharge_bridge.ui.templating import PageRoute
from tests.support.factories import make_source


def test_a_refused_change_is_rolled_back_and_shown_as_a_page(engine: Engine, settings: Settings) -> None:
    router = APIRouter(route_class=PageRoute)

    @router.post("/half-done")
    def half_done(session: SessionDep) -> None:
        make_source(session, "half")  # flushed, then refused
        raise InvalidInput(("body", "x"), "x cannot be used")

    app = FastAPI()
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(router)
    response = TestClient(app).post("/half-done")
    assert response.status_code == 422 and "x cannot be used" in response.text
    assert "text/html" in response.headers["content-type"]
    with session_scope(engine) as session:
        assert session.exec(select(Source).where(Source.name == "half")).first() is None
