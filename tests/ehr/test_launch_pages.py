"""SMART App Launch pages with the EHR mocked (respx): /launch -> the EHR's authorize URL, the
callback signs the linked user in and lands on the case, refusals in the reader's language."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import respx
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from discharge_bridge.access.models import AccessLogEntry
from discharge_bridge.app import create_app
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.deps import SESSION_COOKIE
from discharge_bridge.ehr.launch.identities import link_ehr_user
from tests.ehr.test_launch_service import AUTHORIZE, JWKS, KEY, TOKEN, smart_configuration
from tests.support.factories import flagged_case, make_source, make_user, put_encounter
from tests.support.fakefhir import BASE
from tests.support.smart_auth import id_token, jwks_of


@pytest.fixture
def client(settings: Settings, engine: Engine) -> TestClient:
    with session_scope(engine) as session:
        source = make_source(session, "city")
        source.smart_launch = {"client_id": "bridge-app"}
        session.add(source)
        assert source.id is not None
        flagged_case(session, source.id, eid="adm1", pid="p1")
        put_encounter(session, source.id, "adm2", "p2")
        make_user(session, "olga", sources=("city",))
        link_ehr_user(session, "olga", source_name="city", fhir_user="Practitioner/77", actor="test")
    allowed = settings.model_copy(update={"allowed_source_hosts": ["ehr.test", "auth.ehr.test"]})
    return TestClient(create_app(allowed), base_url="https://bridge.test")


@pytest.fixture
def ehr() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{BASE}/.well-known/smart-configuration").respond(200, json=smart_configuration())
        router.get(JWKS).respond(200, json=jwks_of(KEY))
        yield router


def _launch(client: TestClient, ehr: respx.MockRouter, *, patient: str, encounter: str | None) -> dict[str, str]:
    started = client.get("/launch", params={"iss": BASE, "launch": "xyz"}, follow_redirects=False)
    assert started.status_code == 302
    location = started.headers["location"]
    assert location.startswith(AUTHORIZE + "?")
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert query["redirect_uri"] == "https://bridge.test/launch/callback"
    claims = {"iss": BASE, "aud": "bridge-app", "sub": "u", "fhirUser": "Practitioner/77", "nonce": query["nonce"]}
    claims["exp"] = 4102444800  # 2100: the test does not travel in time here
    body = {"access_token": "a", "token_type": "Bearer", "patient": patient, "id_token": id_token(KEY, **claims)}
    if encounter:
        body["encounter"] = encounter
    ehr.post(TOKEN).respond(200, json=body)
    return query


def test_an_ehr_launch_lands_signed_in_on_the_case(client: TestClient, ehr: respx.MockRouter, engine: Engine) -> None:
    query = _launch(client, ehr, patient="p1", encounter="adm1")
    back = client.get("/launch/callback", params={"code": "c", "state": query["state"]}, follow_redirects=False)
    assert back.status_code == 303
    assert back.headers["location"].startswith("/cases/")
    cookie = back.headers["set-cookie"]
    assert f"{SESSION_COOKIE}=" in cookie and "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    assert "Secure" in cookie  # over HTTPS
    page = client.get(back.headers["location"])
    assert page.status_code == 200
    assert "olga" in page.text or "Olga" in page.text


def test_a_patient_without_a_case_is_offered_one(client: TestClient, ehr: respx.MockRouter, engine: Engine) -> None:
    query = _launch(client, ehr, patient="p2", encounter="adm2")
    back = client.get("/launch/callback", params={"code": "c", "state": query["state"]}, follow_redirects=False)
    assert back.headers["location"] == "/launch/patient?source=city&patient=p2&encounter=adm2"
    page = client.get(back.headers["location"])
    assert page.status_code == 200
    assert 'action="/worklist/open"' in page.text and 'value="adm2"' in page.text
    with session_scope(engine) as session:
        entry = session.exec(select(AccessLogEntry).where(AccessLogEntry.route == "ui.launch.patient")).one()
        assert (entry.username, entry.patient_count) == ("olga", 1)


def test_a_patient_we_do_not_hold_is_named(client: TestClient, ehr: respx.MockRouter) -> None:
    query = _launch(client, ehr, patient="p9", encounter=None)
    back = client.get("/launch/callback", params={"code": "c", "state": query["state"]})
    assert back.status_code == 200
    assert 'id="launch-no-admission"' in back.text and "p9" in back.text


def test_a_replayed_callback_is_refused_in_the_readers_language(client: TestClient, ehr: respx.MockRouter) -> None:
    query = _launch(client, ehr, patient="p1", encounter="adm1")
    client.get("/launch/callback", params={"code": "c", "state": query["state"]}, follow_redirects=False)
    client.cookies.delete(SESSION_COOKIE)
    again = client.get(
        "/launch/callback", params={"code": "c", "state": query["state"]}, headers={"Accept-Language": "ru"}
    )
    assert again.status_code == 400
    assert "Эта ссылка входа уже использована" in again.text
    assert SESSION_COOKIE not in again.headers.get("set-cookie", "")


def test_an_unknown_issuer_and_an_ehr_error_are_pages_not_errors(client: TestClient) -> None:
    refused = client.get("/launch", params={"iss": "https://evil.test/fhir", "launch": "x"})
    assert refused.status_code == 403 and 'id="launch-refused"' in refused.text
    denied = client.get("/launch/callback", params={"error": "access_denied", "state": "s"})
    assert denied.status_code == 400 and "did not allow the launch" in denied.text
    assert client.get("/launch").status_code == 400


def test_standalone_launch_by_source_name(client: TestClient, ehr: respx.MockRouter) -> None:
    started = client.get("/launch", params={"source": "city"}, follow_redirects=False)
    assert started.status_code == 302
    query = parse_qs(urlsplit(started.headers["location"]).query)
    assert "launch" not in query and "launch/patient" in query["scope"][0]


def test_a_callback_in_another_browser_is_refused_and_spends_nothing(client: TestClient, ehr: respx.MockRouter) -> None:
    """Login CSRF: a code and state from someone else's launch, sent to a browser that did not start it."""
    query = _launch(client, ehr, patient="p1", encounter="adm1")
    assert client.cookies.get("discharge_bridge_launch") == query["state"]
    client.cookies.delete("discharge_bridge_launch")
    other = client.get("/launch/callback", params={"code": "c", "state": query["state"]}, follow_redirects=False)
    assert other.status_code == 400 and "not one we started" in other.text
    assert SESSION_COOKIE not in other.headers.get("set-cookie", "")
    client.cookies.set("discharge_bridge_launch", query["state"], domain="bridge.test", path="/launch/callback")
    back = client.get("/launch/callback", params={"code": "c", "state": query["state"]}, follow_redirects=False)
    assert back.status_code == 303  # the browser that started it still can
