"""SMART Backend Services: discovery, signed assertions, token caching and re-auth on 401."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from itertools import count
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fhir_testkit import BASE, FakeClock

from discharge_bridge.fhir import (
    AuthConfig,
    FhirAuthError,
    FhirClient,
    FhirFatalError,
    FhirTemporaryError,
    RetryPolicy,
    SmartBackendAuth,
    build_auth,
)

TOKEN_URL = "https://auth.example/oauth2/token"
PATIENT = {"resourceType": "Patient", "id": "p1"}
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


@pytest.fixture
def discovery(mock: respx.MockRouter) -> respx.Route:
    return mock.get(f"{BASE}/.well-known/smart-configuration").respond(
        200, json={"token_endpoint": TOKEN_URL, "grant_types_supported": ["client_credentials"]}
    )


@pytest.fixture
def token_route(mock: respx.MockRouter) -> respx.Route:
    """Token endpoint issuing token-1, token-2, ... valid for 300 s."""
    serial = count(1)

    def issue(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"access_token": f"token-{next(serial)}", "token_type": "bearer", "expires_in": 300}
        )

    return mock.post(TOKEN_URL).mock(side_effect=issue)


@pytest.fixture
def patient_route(mock: respx.MockRouter) -> respx.Route:
    return mock.get(f"{BASE}/Patient/p1").respond(200, json=PATIENT)


@pytest.fixture
def make_client(rsa_key_file: Path, clock: FakeClock, retry: RetryPolicy) -> Iterator[Callable[..., FhirClient]]:
    clients: list[FhirClient] = []

    def make(**overrides: Any) -> FhirClient:
        config = AuthConfig(
            type="smart", client_id="bridge-client", private_key_file=str(rsa_key_file), kid="key-1", **overrides
        )
        client = FhirClient(BASE, auth=build_auth(config, BASE, retry=retry, clock=clock), retry=retry)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def bearer(route: respx.Route, index: int = -1) -> str:
    return route.calls[index].request.headers["Authorization"]


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_discovery_and_signed_assertion(
    alg: str,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
    rsa_key_file: Path,
    ec_key_file: Path,
    clock: FakeClock,
    retry: RetryPolicy,
    discovery: respx.Route,
    token_route: respx.Route,
    patient_route: respx.Route,
) -> None:
    key_file, public_key = (
        (rsa_key_file, rsa_key.public_key()) if alg == "RS384" else (ec_key_file, ec_key.public_key())
    )
    config = AuthConfig(
        type="smart",
        client_id="bridge-client",
        private_key_file=str(key_file),
        kid="key-1",
        alg=alg,  # type: ignore[arg-type]
    )
    with FhirClient(BASE, auth=build_auth(config, BASE, retry=retry, clock=clock), retry=retry) as client:
        assert client.read("Patient", "p1") == PATIENT

    assert discovery.call_count == 1
    assert token_route.call_count == 1
    assert bearer(patient_route) == "Bearer token-1"
    sent = form(token_route.calls.last.request)
    assert token_route.calls.last.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert sent["grant_type"] == "client_credentials"
    assert sent["scope"] == config.scope
    assert sent["client_assertion_type"] == ASSERTION_TYPE

    assertion = sent["client_assertion"]
    header = jwt.get_unverified_header(assertion)
    assert header == {"alg": alg, "kid": "key-1", "typ": "JWT"}
    claims = jwt.decode(assertion, public_key, algorithms=[alg], audience=TOKEN_URL)  # verifies the signature
    assert claims["iss"] == claims["sub"] == "bridge-client"
    assert claims["aud"] == TOKEN_URL
    assert claims["iat"] == int(clock.now)
    assert 0 < claims["exp"] - claims["iat"] <= 300
    assert claims["jti"]


def test_token_is_reused_until_expiry_then_renewed_with_fresh_jti(
    make_client: Callable[..., FhirClient],
    clock: FakeClock,
    discovery: respx.Route,
    token_route: respx.Route,
    patient_route: respx.Route,
) -> None:
    client = make_client()
    for _ in range(3):
        client.read("Patient", "p1")
        clock.advance(60)  # 0, 60, 120 s: well within the 300 s lifetime
    assert token_route.call_count == 1
    assert [bearer(patient_route, i) for i in range(3)] == ["Bearer token-1"] * 3

    clock.advance(150)  # 330 s after issue: expired
    client.read("Patient", "p1")
    assert token_route.call_count == 2
    assert bearer(patient_route) == "Bearer token-2"
    assert discovery.call_count == 1  # the token endpoint is discovered once

    jtis = [
        jwt.decode(form(c.request)["client_assertion"], options={"verify_signature": False})["jti"]
        for c in token_route.calls
    ]
    assert len(set(jtis)) == 2


def test_token_is_renewed_shortly_before_expiry(
    make_client: Callable[..., FhirClient],
    clock: FakeClock,
    discovery: respx.Route,
    token_route: respx.Route,
    patient_route: respx.Route,
) -> None:
    client = make_client()
    client.read("Patient", "p1")
    clock.advance(275)  # inside the 30 s safety margin before the 300 s expiry
    client.read("Patient", "p1")
    assert token_route.call_count == 2


def test_missing_expires_in_defaults_to_five_minutes(
    make_client: Callable[..., FhirClient],
    clock: FakeClock,
    discovery: respx.Route,
    mock: respx.MockRouter,
    patient_route: respx.Route,
) -> None:
    tokens = mock.post(TOKEN_URL).respond(200, json={"access_token": "t", "token_type": "Bearer"})
    client = make_client()
    client.read("Patient", "p1")
    clock.advance(250)
    client.read("Patient", "p1")
    assert tokens.call_count == 1
    clock.advance(60)
    client.read("Patient", "p1")
    assert tokens.call_count == 2


def test_token_url_override_skips_discovery(
    make_client: Callable[..., FhirClient],
    discovery: respx.Route,
    mock: respx.MockRouter,
    patient_route: respx.Route,
) -> None:
    other = mock.post("https://login.example/token").respond(200, json={"access_token": "t", "expires_in": 600})
    make_client(token_url="https://login.example/token").read("Patient", "p1")
    assert discovery.call_count == 0
    assert other.call_count == 1
    claims = jwt.decode(form(other.calls.last.request)["client_assertion"], options={"verify_signature": False})
    assert claims["aud"] == "https://login.example/token"


def test_401_triggers_exactly_one_reauth_and_retry(
    make_client: Callable[..., FhirClient],
    discovery: respx.Route,
    token_route: respx.Route,
    mock: respx.MockRouter,
    sleeps: list[float],
) -> None:
    route = mock.get(f"{BASE}/Patient/p1").mock(side_effect=[httpx.Response(401), httpx.Response(200, json=PATIENT)])
    assert make_client().read("Patient", "p1") == PATIENT
    assert token_route.call_count == 2
    assert route.call_count == 2
    assert [bearer(route, 0), bearer(route, 1)] == ["Bearer token-1", "Bearer token-2"]
    assert sleeps == []


def test_second_401_is_auth_error(
    make_client: Callable[..., FhirClient],
    discovery: respx.Route,
    token_route: respx.Route,
    mock: respx.MockRouter,
) -> None:
    route = mock.get(f"{BASE}/Patient/p1").respond(401, json={"issue": [{"diagnostics": "token token-2 revoked"}]})
    with pytest.raises(FhirAuthError) as caught:
        make_client().read("Patient", "p1")
    assert caught.value.status_code == 401
    assert "token-2" not in str(caught.value)
    assert token_route.call_count == 2
    assert route.call_count == 2


def test_token_endpoint_invalid_client_is_actionable_auth_error(
    make_client: Callable[..., FhirClient],
    discovery: respx.Route,
    mock: respx.MockRouter,
    patient_route: respx.Route,
    sleeps: list[float],
) -> None:
    tokens = mock.post(TOKEN_URL).respond(
        400, json={"error": "invalid_client", "error_description": "assertion eyJsecret did not verify"}
    )
    with pytest.raises(FhirAuthError) as caught:
        make_client().read("Patient", "p1")
    message = str(caught.value)
    assert message.startswith(f"token endpoint {TOKEN_URL} refused the client assertion (400 invalid_client)")
    assert "check the client id and that the public key/JWKS is registered" in message
    assert "eyJsecret" not in message
    assert caught.value.status_code == 400
    assert caught.value.url == TOKEN_URL
    assert tokens.call_count == 1
    assert patient_route.call_count == 0
    assert sleeps == []


def test_token_endpoint_invalid_scope_names_the_scope(
    make_client: Callable[..., FhirClient], discovery: respx.Route, mock: respx.MockRouter
) -> None:
    mock.post(TOKEN_URL).respond(400, json={"error": "invalid_scope"})
    with pytest.raises(FhirAuthError, match=r"\(400 invalid_scope\).*requested: system/Patient.rs"):
        make_client(scope="system/Patient.rs").read("Patient", "p1")


def test_token_endpoint_outage_is_retried_with_fresh_assertions(
    make_client: Callable[..., FhirClient],
    discovery: respx.Route,
    mock: respx.MockRouter,
    patient_route: respx.Route,
    sleeps: list[float],
) -> None:
    tokens = mock.post(TOKEN_URL).mock(
        side_effect=[
            httpx.Response(503, headers={"Retry-After": "3"}),
            httpx.ConnectError("refused"),
            httpx.Response(200, json={"access_token": "t", "expires_in": 300}),
        ]
    )
    assert make_client().read("Patient", "p1") == PATIENT
    assert tokens.call_count == 3
    assert sleeps[0] == 3.0 and len(sleeps) == 2
    jtis = {
        jwt.decode(form(c.request)["client_assertion"], options={"verify_signature": False})["jti"]
        for c in tokens.calls
    }
    assert len(jtis) == 3


def test_token_endpoint_down_raises_temporary_error_not_retried_again(
    rsa_key_file: Path,
    clock: FakeClock,
    discovery: respx.Route,
    mock: respx.MockRouter,
    patient_route: respx.Route,
    sleeps: list[float],
) -> None:
    tokens = mock.post(TOKEN_URL).respond(502)
    policy = RetryPolicy(max_attempts=2, sleep=sleeps.append)
    config = AuthConfig(type="smart", client_id="c", private_key_file=str(rsa_key_file), kid="k")
    client = FhirClient(BASE, auth=build_auth(config, BASE, retry=policy, clock=clock), retry=policy)
    with client, pytest.raises(FhirTemporaryError) as caught:
        client.read("Patient", "p1")
    assert caught.value.url == TOKEN_URL
    assert tokens.call_count == 2  # the FHIR call's own retry loop does not multiply token attempts
    assert patient_route.call_count == 0


def test_discovery_missing_suggests_token_url(make_client: Callable[..., FhirClient], mock: respx.MockRouter) -> None:
    mock.get(f"{BASE}/.well-known/smart-configuration").respond(404)
    with pytest.raises(FhirAuthError, match=r"set auth\.token_url"):
        make_client().read("Patient", "p1")


def test_discovery_without_token_endpoint(make_client: Callable[..., FhirClient], mock: respx.MockRouter) -> None:
    mock.get(f"{BASE}/.well-known/smart-configuration").respond(200, json={"capabilities": []})
    with pytest.raises(FhirAuthError, match="no usable token_endpoint"):
        make_client().read("Patient", "p1")


def test_concurrent_threads_share_one_token(
    rsa_key: rsa.RSAPrivateKey, discovery: respx.Route, token_route: respx.Route
) -> None:
    auth = SmartBackendAuth(BASE, client_id="c", private_key=rsa_key, kid="k")
    results: list[str] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        results.append(auth.access_token())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    auth.close()
    assert results == ["token-1"] * 8
    assert token_route.call_count == 1


def test_key_not_matching_alg_is_fatal(rsa_key_file: Path) -> None:
    config = AuthConfig(type="smart", client_id="c", private_key_file=str(rsa_key_file), kid="k", alg="ES384")
    with pytest.raises(FhirFatalError, match="does not fit alg ES384: expected an EC P-384 key"):
        build_auth(config, BASE)


def test_missing_or_invalid_key_file_is_fatal(tmp_path: Path) -> None:
    missing = tmp_path / "absent.pem"
    config = AuthConfig(type="smart", client_id="c", private_key_file=str(missing), kid="k")
    with pytest.raises(FhirFatalError, match=f"cannot read the SMART private key file {missing}"):
        build_auth(config, BASE)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    config = AuthConfig(type="smart", client_id="c", private_key_file=str(garbage), kid="k")
    with pytest.raises(FhirFatalError, match="is not an unencrypted PEM private key") as caught:
        build_auth(config, BASE)
    assert "not a key" not in str(caught.value)
