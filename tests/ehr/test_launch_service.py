"""SMART App Launch, the service: the authorization URL, the state taken once, PKCE, the id_token
checks and the user matched through the EHR identity, each refusal with its reason."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from discharge_bridge.audit import AuditQuery, search_audit
from discharge_bridge.db import session_scope
from discharge_bridge.ehr.launch import service
from discharge_bridge.ehr.launch.identities import IdentityError, ehr_identities, link_ehr_user, unlink_ehr_user
from discharge_bridge.ehr.launch.service import LaunchRefused, begin, complete
from discharge_bridge.ehr.models import SmartLaunchState
from discharge_bridge.sources.models import Source
from discharge_bridge.sources.safety import SourcePolicy
from discharge_bridge.users.service import disable_user
from tests.support.factories import make_source, make_user
from tests.support.fakefhir import BASE
from tests.support.smart_auth import id_token, jwks_of, new_key, s256

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
POLICY = SourcePolicy(allowed_hosts=frozenset({"ehr.test", "auth.ehr.test"}))
REDIRECT = "https://bridge.test/launch/callback"
AUTHORIZE = "https://auth.ehr.test/authorize"
TOKEN = "https://auth.ehr.test/token"
JWKS = "https://auth.ehr.test/jwks"
KEY = new_key()
OTHER_KEY = new_key()


def smart_configuration() -> dict[str, Any]:
    return {
        "issuer": BASE,
        "authorization_endpoint": AUTHORIZE,
        "token_endpoint": TOKEN,
        "jwks_uri": JWKS,
        "code_challenge_methods_supported": ["S256"],
    }


@pytest.fixture
def ehr() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{BASE}/.well-known/smart-configuration").respond(200, json=smart_configuration())
        router.get(JWKS).respond(200, json=jwks_of(KEY))
        yield router


@pytest.fixture
def city(engine: Engine) -> Engine:
    with session_scope(engine) as session:
        source = make_source(session, "city")
        source.smart_launch = {"client_id": "bridge-app"}
        session.add(source)
        make_source(session, "north")  # launch not configured
        make_user(session, "olga", sources=("city",))
        link_ehr_user(session, "olga", source_name="city", fhir_user="Practitioner/77", actor="test")
    return engine


def _source(session: Session, name: str = "city") -> Source:
    found = session.exec(select(Source).where(Source.name == name)).one()
    return found


def _begin(engine: Engine, launch: str | None = "L1") -> dict[str, str]:
    with session_scope(engine) as session:
        url = begin(session, _source(session), launch=launch, redirect_uri=REDIRECT, now=NOW, policy=POLICY)
    assert url.startswith(AUTHORIZE + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def claims(query: dict[str, str], **changes: Any) -> dict[str, Any]:
    base = {
        "iss": BASE,
        "aud": "bridge-app",
        "sub": "u77",
        "fhirUser": f"{BASE}/Practitioner/77",
        "nonce": query["nonce"],
        "iat": int(NOW.timestamp()),
        "exp": int((NOW + timedelta(minutes=5)).timestamp()),
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def token_answer(ehr: respx.MockRouter, query: dict[str, str], *, key: Any = KEY, **changes: Any) -> respx.Route:
    body = {"access_token": "a", "token_type": "Bearer", "patient": "p1", "encounter": "adm1"}
    body["id_token"] = id_token(key, **claims(query, **changes))
    return ehr.post(TOKEN).respond(200, json=body)


def _complete(engine: Engine, query: dict[str, str], *, now: datetime = NOW) -> service.LaunchResult:
    with session_scope(engine) as session:
        result = complete(session, state=query["state"], code="c0de", redirect_uri=REDIRECT, now=now, policy=POLICY)
        session.expunge_all()
        return result


def _refused(engine: Engine, query: dict[str, str], *, now: datetime = NOW) -> str:
    with session_scope(engine) as session, pytest.raises(LaunchRefused) as refused:
        complete(session, state=query["state"], code="c0de", redirect_uri=REDIRECT, now=now, policy=POLICY)
    return refused.value.reason


def test_ehr_launch_url_carries_pkce_s256_state_nonce_aud_and_launch(city: Engine, ehr: respx.MockRouter) -> None:
    query = _begin(city)
    assert query["response_type"] == "code"
    assert query["client_id"] == "bridge-app"
    assert query["redirect_uri"] == REDIRECT
    assert query["scope"] == "launch openid fhirUser patient/*.rs"
    assert query["aud"] == BASE
    assert query["launch"] == "L1"
    assert query["code_challenge_method"] == "S256"
    with session_scope(city) as session:
        row = session.exec(select(SmartLaunchState)).one()
        assert (row.state, row.nonce, row.launch) == (query["state"], query["nonce"], "L1")
        assert query["code_challenge"] == s256(row.code_verifier)
        assert 43 <= len(row.code_verifier) <= 128
        assert row.expires_at == NOW + timedelta(minutes=10)


def test_standalone_launch_asks_for_the_patient_context(city: Engine, ehr: respx.MockRouter) -> None:
    query = _begin(city, launch=None)
    assert "launch" not in query
    assert query["scope"].split()[:2] == ["launch/patient", "launch/encounter"]


def test_complete_sends_the_verifier_and_returns_the_linked_user_and_context(
    city: Engine, ehr: respx.MockRouter
) -> None:
    query = _begin(city)
    route = token_answer(ehr, query)
    result = _complete(city, query)
    assert (result.user.username, result.source.name) == ("olga", "city")
    assert (result.patient, result.encounter) == ("p1", "adm1")
    assert result.fhir_user == "Practitioner/77"
    sent = parse_qs(route.calls.last.request.content.decode())
    with session_scope(city) as session:
        row = session.exec(select(SmartLaunchState)).one()
        assert sent == {
            "grant_type": ["authorization_code"],
            "code": ["c0de"],
            "redirect_uri": [REDIRECT],
            "client_id": ["bridge-app"],
            "code_verifier": [row.code_verifier],
        }
        assert row.used_at == NOW


def test_a_state_serves_once(city: Engine, ehr: respx.MockRouter) -> None:
    query = _begin(city)
    token_answer(ehr, query)
    _complete(city, query)
    assert _refused(city, query) == service.REPLAYED


def test_unknown_state_is_refused(city: Engine, ehr: respx.MockRouter) -> None:
    _begin(city)
    assert _refused(city, {"state": "forged"}) == service.BAD_STATE


def test_expired_state_is_refused_and_spent(city: Engine, ehr: respx.MockRouter) -> None:
    query = _begin(city)
    route = token_answer(ehr, query)
    assert _refused(city, query, now=NOW + timedelta(minutes=10, seconds=1)) == service.EXPIRED
    assert not route.called  # the code was never exchanged
    assert _refused(city, query) == service.REPLAYED


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({}, OTHER_KEY),  # signed by another key
        ({"aud": "someone-else"}, KEY),
        ({"iss": "https://other.test/fhir"}, KEY),
        ({"nonce": "replayed-nonce"}, KEY),
        ({"exp": int((NOW - timedelta(minutes=5)).timestamp())}, KEY),
    ],
    ids=["signature", "aud", "iss", "nonce", "exp"],
)
def test_an_id_token_that_cannot_be_trusted_is_refused(
    city: Engine, ehr: respx.MockRouter, changes: dict[str, Any], key: Any
) -> None:
    query = _begin(city)
    token_answer(ehr, query, key=key, **changes)
    assert _refused(city, query) == "bad_id_token"


def test_the_token_endpoint_refusing_is_a_refusal_not_an_error(city: Engine, ehr: respx.MockRouter) -> None:
    query = _begin(city)
    ehr.post(TOKEN).respond(400, json={"error": "invalid_grant"})
    assert _refused(city, query) == "token_refused"


def test_an_unreachable_ehr_is_a_refusal(city: Engine, ehr: respx.MockRouter) -> None:
    query = _begin(city)
    ehr.post(TOKEN).mock(side_effect=httpx.ConnectError("refused"))
    assert _refused(city, query) == "server_unreachable"


@pytest.mark.parametrize(
    ("fhir_user", "reason"),
    [
        ("Practitioner/78", service.UNLINKED),
        ("https://other.test/fhir/Practitioner/77", service.NO_FHIR_USER),  # another server's user
        (None, service.NO_FHIR_USER),
    ],
)
def test_a_user_not_linked_here_is_refused(
    city: Engine, ehr: respx.MockRouter, fhir_user: str | None, reason: str
) -> None:
    query = _begin(city)
    token_answer(ehr, query, fhirUser=fhir_user)
    assert _refused(city, query) == reason


def test_a_relative_fhir_user_matches(city: Engine, ehr: respx.MockRouter) -> None:
    query = _begin(city)
    token_answer(ehr, query, fhirUser="Practitioner/77")
    assert _complete(city, query).user.username == "olga"


def test_a_disabled_user_is_refused(city: Engine, ehr: respx.MockRouter) -> None:
    with session_scope(city) as session:
        disable_user(session, "olga")
    query = _begin(city)
    token_answer(ehr, query)
    assert _refused(city, query) == service.DISABLED


def test_a_user_without_that_hospital_is_refused(city: Engine, ehr: respx.MockRouter) -> None:
    with session_scope(city) as session:
        make_user(session, "nina", sources=("north",))
        link_ehr_user(session, "nina", source_name="city", fhir_user="Practitioner/90", actor="test")
    query = _begin(city)
    token_answer(ehr, query, fhirUser="Practitioner/90")
    assert _refused(city, query) == service.NO_HOSPITAL


def test_a_launch_without_patient_context_is_refused(city: Engine, ehr: respx.MockRouter) -> None:
    query = _begin(city)
    body = {"access_token": "a", "token_type": "Bearer", "id_token": id_token(KEY, **claims(query))}
    ehr.post(TOKEN).respond(200, json=body)
    assert _refused(city, query) == service.NO_PATIENT


def test_the_issuer_must_be_a_configured_source(city: Engine) -> None:
    with session_scope(city) as session:
        assert service.source_for_issuer(session, BASE + "/").name == "city"
        with pytest.raises(LaunchRefused) as refused:
            service.source_for_issuer(session, "https://evil.test/fhir")
        assert refused.value.reason == service.UNKNOWN_ISSUER
        with pytest.raises(LaunchRefused) as refused:
            service.source_named(session, "north")  # known, but launch is off
        assert refused.value.reason == service.NOT_CONFIGURED


def test_smart_configuration_through_the_safety_rules(city: Engine) -> None:
    """A source at a metadata address is never asked, even for its SMART configuration."""
    with session_scope(city) as session:
        source = _source(session)
        source.base_url = "http://169.254.169.254/fhir"
        with respx.mock(assert_all_called=False) as router:
            route = router.get("http://169.254.169.254/fhir/.well-known/smart-configuration").respond(200, json={})
            with pytest.raises(LaunchRefused) as refused:
                begin(session, source, launch="L1", redirect_uri=REDIRECT, now=NOW, policy=SourcePolicy())
        assert refused.value.reason == "server_unreachable"
        assert not route.called


def test_links_are_audited_unique_and_listed(city: Engine) -> None:
    with session_scope(city) as session:
        make_user(session, "ivan", sources=("city",))
        with pytest.raises(IdentityError):
            link_ehr_user(session, "ivan", source_name="city", fhir_user="Practitioner/77", actor="cli:root")
        with pytest.raises(IdentityError):
            link_ehr_user(session, "ivan", source_name="city", fhir_user="not a reference", actor="cli:root")
        assert link_ehr_user(session, "olga", source_name="city", fhir_user="Practitioner/77", actor="x") is False
        assert ehr_identities(session) == {"olga": ["city:Practitioner/77"]}
        assert unlink_ehr_user(session, "olga", source_name="city", actor="cli:root") == 1
        assert ehr_identities(session) == {}
        actions = [(e.action, e.actor, e.details) for e in search_audit(session, AuditQuery(target_name="olga"))]
        assert ("user.unlink_ehr", "cli:root", {"source": "city", "fhir_user": "Practitioner/77"}) in actions
        assert ("user.link_ehr", "test", {"source": "city", "fhir_user": "Practitioner/77"}) in actions
