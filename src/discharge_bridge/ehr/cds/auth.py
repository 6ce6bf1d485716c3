"""Verifying the EHR's CDS Hooks JWT (``Authorization: Bearer <JWT>``): which hospital calls, and that it is it.

The issuer names the source (``Source.cds_hooks["issuer"]``); the signature is checked against that
source's JWK Set (``jwks_url``, or a ``jku`` header only when it is in the source's ``jku_allow`` list),
fetched with httpx, cached for ``JWKS_TTL`` and fetched again once when a ``kid`` is unknown (the EHR
rotated its keys). ``aud`` must be the URL of the endpoint called, ``exp`` in the future (small leeway,
at most ``MAX_LIFETIME`` ahead), ``iat`` present, and ``jti`` never seen before: each accepted ``jti``
is kept (``cds_token_seen``) until its token expires, so a replay is refused. Every failure is a
``CdsUnauthorized`` with a short reason; the token itself is never logged.

Algorithms: RS384 and ES384 by default (the spec's recommendation); a source may list others from
``ASYMMETRIC`` (e.g. RS256, ES256 for an EHR that signs with them): the spec forbids only ``none`` and
symmetric (HMAC) algorithms, and an RS256/ES256 signature is still sound, but accepting them is the
hospital's explicit choice, never a default.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from discharge_bridge.ehr.models import CdsTokenSeen
from discharge_bridge.sources.models import Source

log = logging.getLogger(__name__)

DEFAULT_ALGORITHMS = ("RS384", "ES384")
ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"})
LEEWAY = timedelta(seconds=30)
MAX_LIFETIME = timedelta(hours=1)  # a CDS Hooks JWT is minted per call: refuse one valid for longer
JWKS_TTL = 300.0  # seconds a fetched JWK Set is trusted before it is fetched again
JWKS_TIMEOUT = 5.0

JwksFetch = Callable[[str], dict[str, Any]]


class CdsUnauthorized(Exception):
    """The call is refused (401); ``reason`` is short and holds nothing of the token."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class CdsCaller:
    source_id: int
    source_name: str
    issuer: str

    @property
    def user(self) -> str:
        """Who the access log names: the EHR, by its issuer (the clinician is the EHR's to log)."""
        return f"cds:{self.issuer}"[:200]


def fetch_jwks(url: str) -> dict[str, Any]:
    response = httpx.get(url, timeout=JWKS_TIMEOUT, headers={"Accept": "application/json"})
    response.raise_for_status()
    body = response.json()
    if not isinstance(body, dict) or not isinstance(body.get("keys"), list):
        raise ValueError("not a JWK Set")
    return body


class JwksCache:
    """JWK Sets by URL, each kept ``ttl`` seconds (monotonic clock); thread-safe."""

    def __init__(self, fetch: JwksFetch = fetch_jwks, ttl: float = JWKS_TTL) -> None:
        self._fetch, self._ttl = fetch, ttl
        self._sets: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._sets.clear()

    def _get(self, url: str, *, fresh: bool) -> dict[str, Any]:
        with self._lock:
            cached = self._sets.get(url)
        if cached is not None and not fresh and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        try:
            body = self._fetch(url)
        except Exception as exc:  # any failure to get the keys means the token cannot be checked
            log.warning("CDS Hooks: the JWK Set could not be fetched (%s)", type(exc).__name__)
            raise CdsUnauthorized("the issuer's JWK Set could not be fetched") from None
        with self._lock:
            self._sets[url] = (time.monotonic(), body)
        return body

    def key(self, url: str, kid: str) -> dict[str, Any]:
        """The JWK of ``kid``; fetched again once when it is not in the cached set."""
        for fresh in (False, True):
            keys = self._get(url, fresh=fresh).get("keys", [])
            found = [k for k in keys if isinstance(k, dict) and k.get("kid") == kid]
            if found:
                return found[0]
        raise CdsUnauthorized("unknown kid")


JWKS = JwksCache()


def issuer_source(session: Session, issuer: str) -> Source | None:
    """The source whose CDS Hooks client signs as ``issuer`` (sources are few: read them all)."""
    for source in session.exec(select(Source).order_by(col(Source.id))):
        if (source.cds_hooks or {}).get("issuer") == issuer:
            return source
    return None


def _algorithms(settings: dict[str, Any]) -> tuple[str, ...]:
    chosen = settings.get("algorithms") or DEFAULT_ALGORITHMS
    return tuple(a for a in chosen if a in ASYMMETRIC)


def _seconds(claims: dict[str, Any], name: str) -> datetime:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CdsUnauthorized(f"{name} missing or not a number")
    return datetime.fromtimestamp(value, UTC)


def verify_token(
    session: Session, token: str, *, audience: str, now: datetime, jwks: JwksCache | None = None
) -> CdsCaller:
    """The caller a valid JWT proves, with its ``jti`` recorded (flushed); CdsUnauthorized otherwise."""
    jwks = jwks or JWKS
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise CdsUnauthorized("not a JWT") from None
    issuer = unverified.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise CdsUnauthorized("iss missing")
    source = issuer_source(session, issuer)
    if source is None or source.id is None:
        raise CdsUnauthorized("unknown issuer")
    settings = dict(source.cds_hooks or {})
    alg = header.get("alg")
    if alg not in _algorithms(settings):
        raise CdsUnauthorized(f"algorithm {str(alg)[:10]!r} not accepted")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise CdsUnauthorized("kid missing")
    url = str(settings.get("jwks_url") or "")
    jku = header.get("jku")
    if jku is not None:
        if jku != url and jku not in (settings.get("jku_allow") or []):
            raise CdsUnauthorized("jku not allowed")
        url = str(jku)
    if not url:
        raise CdsUnauthorized("no JWK Set configured for this issuer")
    jwk = jwks.key(url, kid)
    if jwk.get("alg") not in (None, alg):
        raise CdsUnauthorized("the key is not for this algorithm")
    try:
        key = jwt.PyJWK.from_dict(jwk, algorithm=alg).key
        claims = jwt.decode(
            token,
            key=key,
            algorithms=[alg],
            audience=audience,
            issuer=issuer,
            # times are checked below against the service's clock (clock.py), not PyJWT's
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False, "require": ["aud", "iss"]},
        )
    except jwt.InvalidAudienceError:
        raise CdsUnauthorized("aud is not this endpoint") from None
    except jwt.InvalidSignatureError:
        raise CdsUnauthorized("bad signature") from None
    except (jwt.PyJWTError, ValueError, TypeError):
        raise CdsUnauthorized("the token does not verify") from None
    expires = _seconds(claims, "exp")
    _seconds(claims, "iat")
    if expires + LEEWAY <= now:
        raise CdsUnauthorized("expired")
    if expires > now + MAX_LIFETIME:
        raise CdsUnauthorized("exp too far ahead")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 200:
        raise CdsUnauthorized("jti missing")
    _remember(session, jti, issuer, expires + LEEWAY, now)
    return CdsCaller(source.id, source.name, issuer)


def _remember(session: Session, jti: str, issuer: str, until: datetime, now: datetime) -> None:
    """Record ``jti``; a second use (even by two calls at once: the primary key decides) is a replay."""
    session.execute(delete(CdsTokenSeen).where(col(CdsTokenSeen.expires_at) < now))
    if session.get(CdsTokenSeen, jti) is not None:
        raise CdsUnauthorized("jti already used (replay)")
    try:
        with session.begin_nested():
            session.add(CdsTokenSeen(jti=jti, issuer=issuer[:500], expires_at=until))
    except IntegrityError:
        raise CdsUnauthorized("jti already used (replay)") from None
