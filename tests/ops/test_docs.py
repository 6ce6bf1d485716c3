"""/docs, /redoc and /openapi.json need a signed-in caller: an API token, or a browser's session cookie."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from discharge_bridge.app import create_app
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.deps import SESSION_COOKIE
from discharge_bridge.users.service import get_user, start_session
from tests.support.factories import api_client, make_source, make_user

pytestmark = pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)
DOCS = ("/docs", "/redoc", "/openapi.json")


def test_the_docs_are_closed_to_anonymous_callers(settings: Settings) -> None:
    client = api_client(settings, token=None)
    for path in DOCS:
        response = client.get(path)
        assert response.status_code == 401, path
        assert "swagger" not in response.text.lower() and "paths" not in response.text
    assert client.get("/docs/oauth2-redirect").status_code == 404  # FastAPI's open default is gone


def test_a_token_opens_the_docs(settings: Settings) -> None:
    client = api_client(settings)
    schema = client.get("/openapi.json").json()
    assert "/api/v1/cases/{case_id}" in schema["paths"]
    assert "/metrics" not in schema["paths"] and "/docs" not in schema["paths"]
    swagger = client.get("/docs")
    assert swagger.status_code == 200 and "swagger-ui" in swagger.text and "/openapi.json" in swagger.text
    assert client.get("/redoc").status_code == 200


def test_a_browser_session_opens_the_docs(settings: Settings, engine: Engine) -> None:
    with session_scope(engine) as session:
        make_source(session, "city")
        make_user(session, "boris", "bed_manager", ("city",))
        cookie, _ = start_session(session, get_user(session, "boris"), lifetime=timedelta(hours=1))
    client = TestClient(create_app(settings), cookies={SESSION_COOKIE: cookie})
    assert client.get("/docs").status_code == 200
    assert "/api/v1/worklist" in client.get("/openapi.json").json()["paths"]
