"""The IT page shows each source's CDS Hooks client (issuer, JWK Set) or how to set it, in English and Russian."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from discharge_bridge.app import create_app
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.deps import SESSION_COOKIE
from discharge_bridge.users.service import get_user, start_session
from tests.ehr.cds_support import ISSUER, JWKS_URL, configure
from tests.support.factories import make_source, make_user

pytestmark = pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)


def _page(settings: Settings, engine: Engine, username: str) -> str:
    with session_scope(engine) as session:
        token, _ = start_session(session, get_user(session, username), lifetime=timedelta(hours=1))
    client = TestClient(create_app(settings), follow_redirects=False)
    client.cookies.set(SESSION_COOKIE, token)
    response = client.get("/it")
    assert response.status_code == 200, response.text
    return response.text


def _cds_fact(html: str, name: str) -> str:
    card = html.split(f'id="source-{name}"', 1)[1].split("</section>", 1)[0]
    match = re.search(r'<dd data-cds="(on|off)">(.*?)</dd>', card, re.S)
    assert match, card
    return match.group(1) + " " + " ".join(re.sub(r"<[^>]+>", " ", match.group(2)).split())


def test_the_it_page_shows_the_cds_client_or_how_to_set_it(settings: Settings, engine: Engine) -> None:
    with session_scope(engine) as session:
        configure(session, make_source(session, "city"))
        make_source(session, "north")
        make_user(session, "ivan", "it_admin", ("city", "north"))
        make_user(session, "olga", "it_admin", ("city", "north"), locale="ru")
    html = _page(settings, engine, "ivan")
    assert _cds_fact(html, "city") == f"on Issuer: {ISSUER} JWK Set: {JWKS_URL}"
    assert _cds_fact(html, "north") == (
        "off off (discharge-bridge sources set north --cds-issuer URL --cds-jwks-url URL)"
    )
    russian = _page(settings, engine, "olga")
    assert "Издатель (iss)" in _cds_fact(russian, "city")
    assert "включить: discharge-bridge sources set north" in _cds_fact(russian, "north")
