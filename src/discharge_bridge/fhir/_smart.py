"""SMART Backend Services auth: client_credentials with a signed JWT assertion.

Spec: https://hl7.org/fhir/smart-app-launch/backend-services.html . Tokens are short-lived and
come without refresh tokens, so we simply sign a new assertion when one is about to expire.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Generator
from pathlib import Path
from typing import Any, Literal

import httpx
import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ._exceptions import FhirAuthError, FhirFatalError, FhirTemporaryError, error_for_response, loggable_path
from ._retry import RetryPolicy, retry_after_of, send_with_retry

__all__ = ["DEFAULT_SCOPE", "PrivateKey", "SmartBackendAuth", "load_private_key"]

logger = logging.getLogger("discharge_bridge.fhir")

DEFAULT_SCOPE = (
    "system/Patient.rs system/Encounter.rs system/Condition.rs system/Observation.rs system/RelatedPerson.rs"
)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# The spec caps assertion lifetime at 5 minutes; 4 leaves room for clock drift between hosts.
ASSERTION_LIFETIME = 240
DEFAULT_EXPIRES_IN = 300.0

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
_OAUTH_ERROR = re.compile(r"[a-z_]{1,40}")

_ADVICE = {
    "invalid_client": "refused the client assertion ({code}): check the client id and that the "
    "public key/JWKS is registered with kid {kid}",
    "unauthorized_client": "refused the client ({code}): check that client {client_id} is "
    "registered for the client_credentials grant (backend services)",
    "invalid_scope": "refused the requested scope ({code}): check the scopes granted to client "
    "{client_id} (requested: {scope}); older EHRs need SMART v1 scopes such as system/*.read",
    "invalid_grant": "rejected the assertion ({code}): check this host's clock and that the "
    "registered key matches kid {kid}",
}


def load_private_key(path: str, alg: Literal["RS384", "ES384"]) -> PrivateKey:
    """Load an unencrypted PEM key and check it fits `alg`; errors name the file, not the key."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise FhirFatalError(f"cannot read the SMART private key file {path}: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise FhirFatalError(f"SMART private key file {path} is not an unencrypted PEM private key") from exc
    if alg == "RS384" and isinstance(key, rsa.RSAPrivateKey):
        return key
    # ES384 is ECDSA on P-384 (RFC 7518 section 3.4); other curves are rejected by servers.
    if alg == "ES384" and isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1":
        return key
    expected = "an RSA key" if alg == "RS384" else "an EC P-384 key"
    raise FhirFatalError(f"SMART private key file {path} does not fit alg {alg}: expected {expected}")


class SmartBackendAuth(httpx.Auth):
    """Bearer auth whose token comes from the SMART token endpoint; cached, thread-safe.

    On a 401 from the FHIR server the token is dropped and fetched again once; a second 401 is
    returned to the client, which raises FhirAuthError. Synchronous clients only.
    """

    def __init__(
        self,
        base_url: str,
        *,
        client_id: str,
        private_key: PrivateKey,
        kid: str,
        alg: Literal["RS384", "ES384"] = "RS384",
        scope: str = DEFAULT_SCOPE,
        token_url: str | None = None,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
        refresh_margin: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self.kid = kid
        self.alg = alg
        self.scope = scope
        self._key = private_key
        self._token_url = token_url
        self._retry = retry or RetryPolicy()
        self._clock = clock
        self._refresh_margin = refresh_margin
        self._transport = transport
        self._timeout = timeout
        self._http: httpx.Client | None = None
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0

    def close(self) -> None:
        """Close the pool used for discovery and token calls; a later token call reopens it."""
        with self._lock:
            if self._http is not None:
                self._http.close()
                self._http = None

    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(
                transport=self._transport, timeout=self._timeout, headers={"Accept": "application/json"}
            )
        return self._http

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.access_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            # Tokens can be revoked or expire early (server restarts, key rotation): re-auth once.
            logger.info("%s %s -> 401; re-authenticating once", request.method, loggable_path(request.url.path))
            self.invalidate(token)
            request.headers["Authorization"] = f"Bearer {self.access_token()}"
            yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        raise RuntimeError("SmartBackendAuth does blocking token calls: use it with httpx.Client")
        yield request  # pragma: no cover - makes this an async generator

    def invalidate(self, token: str) -> None:
        """Forget `token` unless another thread already replaced it (avoids a re-auth storm)."""
        with self._lock:
            if self._token == token:
                self._token = None

    def access_token(self) -> str:
        """The cached token, or a new one when absent or within `refresh_margin` of expiry."""
        with self._lock:
            if self._token is None or self._clock() >= self._expires_at:
                self._token, self._expires_at = self._fetch_token()
            return self._token

    def token_endpoint(self) -> str:
        """Configured token URL, else discovered from `.well-known/smart-configuration` (cached)."""
        if self._token_url is None:
            self._token_url = self._discover()
        return self._token_url

    def _discover(self) -> str:
        url = f"{self.base_url}/.well-known/smart-configuration"

        def handle(response: httpx.Response) -> str:
            if not response.is_success:
                error = error_for_response(response, retry_after=retry_after_of(response))
                if isinstance(error, FhirTemporaryError):
                    raise error
                raise FhirAuthError(
                    f"SMART discovery GET {url} returned {response.status_code}: the server does not "
                    "publish a SMART configuration; set auth.token_url to its token endpoint",
                    status_code=response.status_code,
                    url=url,
                )
            body = _json(response, "SMART discovery")
            endpoint = body.get("token_endpoint")
            if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
                raise FhirAuthError(
                    f"SMART discovery {url} has no usable token_endpoint; set auth.token_url",
                    status_code=response.status_code,
                    url=url,
                )
            return endpoint

        http = self._client()
        return send_with_retry(
            http, lambda: http.build_request("GET", url), self._retry, handle=handle, idempotent=True
        )

    def _assertion(self, token_url: str) -> str:
        now = int(self._clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": token_url,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
            "jti": str(uuid.uuid4()),  # servers reject a replayed jti, so one per attempt
        }
        return jwt.encode(claims, self._key, algorithm=self.alg, headers={"kid": self.kid, "typ": "JWT"})

    def _fetch_token(self) -> tuple[str, float]:
        url = self.token_endpoint()
        http = self._client()

        def build() -> httpx.Request:
            form = {
                "grant_type": "client_credentials",
                "scope": self.scope,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self._assertion(url),
            }
            return http.build_request("POST", url, data=form)

        def handle(response: httpx.Response) -> tuple[str, float]:
            if not response.is_success:
                raise self._token_error(response, url)
            body = _json(response, "token response")
            token = body.get("access_token")
            if not isinstance(token, str) or not token:
                raise FhirAuthError(f"token endpoint {url} answered without an access_token", url=url)
            expires_in = _expires_in(body.get("expires_in"))
            margin = min(self._refresh_margin, expires_in / 2)
            logger.info("access token obtained from %s, expires in %.0fs", httpx.URL(url).path, expires_in)
            return token, self._clock() + expires_in - margin

        # Retrying a token POST is safe: each attempt carries a fresh assertion (new jti).
        return send_with_retry(http, build, self._retry, handle=handle, idempotent=True)

    def _token_error(self, response: httpx.Response, url: str) -> Exception:
        error = error_for_response(response, retry_after=retry_after_of(response))
        if isinstance(error, FhirTemporaryError):
            return error
        status = response.status_code
        code = _oauth_error_code(response)
        label = f"{status} {code}" if code else str(status)
        advice = _ADVICE.get(code or "", "refused the token request ({code}): check the SMART client registration")
        message = advice.format(code=label, kid=self.kid, client_id=self.client_id, scope=self.scope)
        # Only the OAuth error code is quoted: error_description may echo the assertion.
        return FhirAuthError(f"token endpoint {url} {message}", status_code=status, url=url)


def _oauth_error_code(response: httpx.Response) -> str | None:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None
    code = body.get("error") if isinstance(body, dict) else None
    return code if isinstance(code, str) and _OAUTH_ERROR.fullmatch(code) else None


def _expires_in(value: Any) -> float:
    # Some servers send expires_in as a string ("3600"); absent means the 5 minute default.
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return DEFAULT_EXPIRES_IN
    return seconds if seconds > 0 else DEFAULT_EXPIRES_IN


def _json(response: httpx.Response, what: str) -> dict[str, Any]:
    url = str(response.request.url)
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise FhirTemporaryError(f"{what} from {url} is not valid JSON (truncated?)", url=url) from exc
    if not isinstance(body, dict):
        raise FhirAuthError(f"{what} from {url} is not a JSON object", url=url)
    return body
