"""CDS Hooks test kit: the EHR's signing keys and JWK Set, tokens signed as the spec describes, a source set up."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from sqlmodel import Session

from discharge_bridge.sources.models import Source

ISSUER = "https://ehr.city.test/"
JWKS_URL = "https://ehr.city.test/jwk_uri"
ISSUER_B = "https://ehr.north.test/"
JWKS_URL_B = "https://ehr.north.test/jwk_uri"
SERVER = "http://testserver"  # the TestClient's base: the aud of a call

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP384R1())
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
B_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: Any, kid: str, alg: str | None = None) -> dict[str, Any]:
    algorithm = ECAlgorithm if isinstance(key, ec.EllipticCurvePrivateKey) else RSAAlgorithm
    jwk = json.loads(algorithm.to_jwk(key.public_key()))
    jwk |= {"kid": kid, "use": "sig"}
    if alg:
        jwk["alg"] = alg
    return jwk


def jwks(*keys: tuple[Any, str]) -> dict[str, Any]:
    return {"keys": [public_jwk(key, kid) for key, kid in keys]}


EHR_JWKS = jwks((RSA_KEY, "rsa-1"), (EC_KEY, "ec-1"))
B_JWKS = jwks((B_KEY, "north-1"))


def token(
    now: datetime,
    aud: str | list[str],
    *,
    key: Any = RSA_KEY,
    kid: str | None = "rsa-1",
    alg: str = "RS384",
    iss: str = ISSUER,
    lifetime: timedelta = timedelta(minutes=5),
    jti: str | None = None,
    headers: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
) -> str:
    """A JWT as an EHR signs it for one call (header kid, typ JWT; iss, aud, exp, iat, jti)."""
    claims: dict[str, Any] = {
        "iss": iss,
        "aud": aud,
        "exp": int((now + lifetime).timestamp()),
        "iat": int(now.timestamp()),
        "jti": jti or str(uuid.uuid4()),
        "tenant": "city-hospital",
    }
    for name in drop:
        claims.pop(name, None)
    header: dict[str, Any] = {"typ": "JWT", **(headers or {})}
    if kid is not None:
        header["kid"] = kid
    return jwt.encode(claims, key, algorithm=alg, headers=header)


def configure(session: Session, source: Source, issuer: str = ISSUER, jwks_url: str = JWKS_URL, **more: Any) -> None:
    source.cds_hooks = {"issuer": issuer, "jwks_url": jwks_url, **more}
    session.add(source)
    session.flush()


def url(service: str) -> str:
    return f"{SERVER}/cds-services/{service}"
