"""The EHR's authorization server over HTTP: its SMART configuration, the code exchange, the id_token.

Every request goes through the source's safety rules (sources/safety.py): the URLs come from the
EHR's configuration document, so each one is checked before it is sent and each connection as it
opens, like a base URL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import jwt

from discharge_bridge.sources.safety import SourcePolicy, SourceRefused, UnsafeSource, check_url, guarded_transport

ID_TOKEN_ALGORITHMS = ["RS256", "RS384", "ES256", "ES384"]
CLOCK_SKEW_SECONDS = 60
_TIMEOUT = 10.0


class OidcError(Exception):
    """The authorization server could not be used, or what it sent cannot be trusted; ``reason`` is a code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class SmartConfiguration:
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str | None
    issuer: str | None


def client(base_url: str, policy: SourcePolicy) -> httpx.Client:
    def vet(request: httpx.Request) -> None:
        try:
            check_url(str(request.url), policy, field="smart_launch")
        except UnsafeSource as exc:
            raise SourceRefused(f"not fetched: {exc}") from None

    return httpx.Client(
        timeout=_TIMEOUT,
        follow_redirects=False,
        transport=guarded_transport(base_url, policy),
        event_hooks={"request": [vet]},
    )


def _json(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise OidcError("server_error", f"{what}: not JSON (HTTP {response.status_code})") from None
    if not isinstance(body, dict):
        raise OidcError("server_error", f"{what}: not a JSON object")
    return body


def _get(http: httpx.Client, url: str, what: str) -> dict[str, Any]:
    try:
        response = http.get(url, headers={"Accept": "application/json"})
    except (httpx.HTTPError, SourceRefused) as exc:
        raise OidcError("server_unreachable", f"{what}: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise OidcError("server_error", f"{what}: HTTP {response.status_code}")
    return _json(response, what)


def smart_configuration(http: httpx.Client, base_url: str) -> SmartConfiguration:
    """``{base}/.well-known/smart-configuration`` (SMART App Launch 2.0, section "Discovery")."""
    doc = _get(http, base_url.rstrip("/") + "/.well-known/smart-configuration", "smart-configuration")
    authorize, token = doc.get("authorization_endpoint"), doc.get("token_endpoint")
    if not isinstance(authorize, str) or not isinstance(token, str):
        raise OidcError("server_error", "smart-configuration without authorization_endpoint / token_endpoint")
    jwks = doc.get("jwks_uri")
    issuer = doc.get("issuer")
    return SmartConfiguration(
        authorize, token, jwks if isinstance(jwks, str) else None, issuer if isinstance(issuer, str) else None
    )


def exchange_code(
    http: httpx.Client, token_endpoint: str, *, code: str, redirect_uri: str, client_id: str, code_verifier: str
) -> dict[str, Any]:
    """The authorization code for tokens, as a public client: PKCE verifier, no secret."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": client_id,
        "code_verifier": code_verifier,
    }
    try:
        response = http.post(token_endpoint, data=form, headers={"Accept": "application/json"})
    except (httpx.HTTPError, SourceRefused) as exc:
        raise OidcError("server_unreachable", f"token: {type(exc).__name__}") from None
    body = _json(response, "token")
    if response.status_code != 200:
        raise OidcError("token_refused", str(body.get("error") or f"HTTP {response.status_code}")[:100])
    return body


def verify_id_token(
    http: httpx.Client,
    id_token: str,
    *,
    jwks_uri: str | None,
    issuer: str,
    client_id: str,
    nonce: str | None,
    now: datetime,
) -> dict[str, Any]:
    """The id_token's claims once its signature (a key of ``jwks_uri``), iss, aud, nonce and exp hold."""
    if not jwks_uri:
        raise OidcError("bad_id_token", "the server publishes no jwks_uri")
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.PyJWTError:
        raise OidcError("bad_id_token", "not a JWT") from None
    if header.get("alg") not in ID_TOKEN_ALGORITHMS:
        raise OidcError("bad_id_token", f"algorithm {str(header.get('alg'))[:20]} not accepted")
    try:
        keys = jwt.PyJWKSet.from_dict(_get(http, jwks_uri, "jwks"))
    except jwt.PyJWTError:
        raise OidcError("bad_id_token", "the server's JWKS has no usable key") from None
    kid = header.get("kid")
    candidates = [k for k in keys.keys if kid is None or k.key_id == kid]
    if not candidates:
        raise OidcError("bad_id_token", "no key of the server's JWKS has this kid")
    claims: dict[str, Any] | None = None
    for key in candidates:
        try:
            claims = jwt.decode(
                id_token,
                key=key.key,
                algorithms=ID_TOKEN_ALGORITHMS,
                audience=client_id,
                issuer=issuer,
                options={"verify_exp": False, "verify_iat": False, "require": ["iss", "aud", "exp", "sub"]},
            )
            break
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError as exc:
            raise OidcError("bad_id_token", type(exc).__name__) from None
    if claims is None:
        raise OidcError("bad_id_token", "bad signature")
    # exp against the service's clock (`now`), not the library's: the launch is decided at one instant.
    if not isinstance(claims.get("exp"), int | float) or claims["exp"] + CLOCK_SKEW_SECONDS < now.timestamp():
        raise OidcError("bad_id_token", "expired")
    if nonce is not None and claims.get("nonce") != nonce:
        raise OidcError("bad_id_token", "nonce does not match")
    return claims
