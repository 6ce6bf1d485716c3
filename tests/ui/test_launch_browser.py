"""SMART App Launch in Chromium, the full redirect dance: the EHR's launch button -> our /launch ->
the EHR's authorization server (its "Approve" page) -> /launch/callback -> the case page of the
patient in the launch context, signed in as the user linked to the EHR's fhirUser. A launch by a
fhirUser linked to nobody is refused with a page.

The simulator (sekmet) runs no user launches, so the EHR here is tests/support/smart_auth.py, a
real process on 127.0.0.1 (PKCE S256 checked, a one-time code, an RS256 id_token with fhirUser).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import select

from discharge_bridge.config import Settings
from discharge_bridge.connections.service import add_source
from discharge_bridge.db import get_engine, session_scope
from discharge_bridge.deps import SESSION_COOKIE
from discharge_bridge.ehr.launch.identities import link_ehr_user
from discharge_bridge.users.models import WebSession
from tests.support.factories import flagged_case, make_user
from tests.support.smart_auth import SmartAuthServer, free_port, serve_smart_auth
from tests.ui.conftest import LiveServer

pytestmark = pytest.mark.slow

CLIENT_ID = "discharge-bridge-launch"


@pytest.fixture(scope="module")
def ehr(live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SmartAuthServer, int]]:
    """The test EHR, and in the live service: its source (launch on), an admission of p-launch with a
    case, and the coordinator "launcher" linked to Practitioner/777 there. Returns the case id."""
    port = free_port()
    folder = tmp_path_factory.mktemp("smart-auth")
    config = {
        "client_id": CLIENT_ID,
        "redirect_uris": [f"{live_server.base_url}/launch/callback"],
        "default_user": "Practitioner/777",
        "default_patient": "p-launch",
    }
    with serve_smart_auth(folder, port=port, **config) as server:
        engine = get_engine(Settings(data_dir=live_server.data_dir))
        with session_scope(engine) as session:
            source = add_source(session, name="ehr", hospital="Launch Hospital", base_url=server.base)
            source.enabled = False  # nothing to poll: the launch alone is under test
            source.smart_launch = {"client_id": CLIENT_ID}
            session.add(source)
            assert source.id is not None
            case = flagged_case(session, source.id, eid="adm-launch", pid="p-launch")
            make_user(session, "launcher", sources=("ehr",), password=None)
            link_ehr_user(session, "launcher", source_name="ehr", fhir_user="Practitioner/777", actor="test")
            case_id = case.id
        assert case_id is not None
        yield server, case_id


def _sessions_of(live_server: LiveServer) -> int:
    with session_scope(get_engine(Settings(data_dir=live_server.data_dir))) as session:
        return len(session.exec(select(WebSession)).all())


def test_ehr_launch_opens_the_case_signed_in(
    live_server: LiveServer, page: Any, ehr: tuple[SmartAuthServer, int]
) -> None:
    server, case_id = ehr
    before = _sessions_of(live_server)
    page.goto(
        server.launch_url(
            f"{live_server.base_url}/launch", patient="p-launch", user="Practitioner/777", encounter="adm-launch"
        )
    )
    page.wait_for_url(re.compile(r"/authorize\?"))  # our /launch sent the browser to the EHR
    assert "code_challenge_method=S256" in page.url and f"client_id={CLIENT_ID}" in page.url
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url(f"{live_server.base_url}/cases/{case_id}")
    assert page.locator("span.who").inner_text().strip() == "launcher"  # signed in as the linked user
    cookies = {c["name"]: c for c in page.context.cookies(live_server.base_url)}
    assert cookies[SESSION_COOKIE]["httpOnly"] and cookies[SESSION_COOKIE]["sameSite"] == "Lax"
    assert _sessions_of(live_server) == before + 1
    page.reload()
    assert page.url == f"{live_server.base_url}/cases/{case_id}"  # the session holds: no sign-in page


def test_a_launch_by_an_unlinked_user_is_refused(
    live_server: LiveServer, page: Any, ehr: tuple[SmartAuthServer, int]
) -> None:
    server, _ = ehr
    before = _sessions_of(live_server)
    page.goto(
        server.launch_url(
            f"{live_server.base_url}/launch", patient="p-launch", user="Practitioner/999", encounter="adm-launch"
        )
    )
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url(re.compile(r"/launch/callback\?"))
    assert "not linked to a user" in page.locator("#launch-refused").inner_text()
    assert _sessions_of(live_server) == before
    assert page.locator("span.who").count() == 0  # nobody signed in


def test_an_ehr_that_denies_is_a_page(live_server: LiveServer, page: Any, ehr: tuple[SmartAuthServer, int]) -> None:
    server, _ = ehr
    page.goto(server.launch_url(f"{live_server.base_url}/launch", patient="p-launch", user="Practitioner/777"))
    page.get_by_role("button", name="Deny").click()
    page.wait_for_url(re.compile(r"/launch/callback\?"))
    assert "did not allow the launch" in page.locator("#launch-refused").inner_text()
