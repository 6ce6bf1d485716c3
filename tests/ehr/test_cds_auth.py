"""The EHR's CDS Hooks JWT: each way a token can be wrong is a refusal with its reason; a good one names the source."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from discharge_bridge.db import session_scope
from discharge_bridge.ehr.cds.auth import CdsUnauthorized, JwksCache, verify_token
from discharge_bridge.ehr.models import CdsTokenSeen
from tests.ehr.cds_support import (
    B_JWKS,
    B_KEY,
    EC_KEY,
    EHR_JWKS,
    ISSUER,
    ISSUER_B,
    JWKS_URL,
    JWKS_URL_B,
    OTHER_RSA_KEY,
    configure,
    jwks,
    token,
)
from tests.support.factories import make_source

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
AUD = "https://bridge.city.test/cds-services/discharge-bridge-patient-view"


class Keys:
    """A JWK Set server in memory: counts fetches by URL; ``sets`` may change between them (rotation)."""

    def __init__(self, sets: dict[str, dict[str, Any]]) -> None:
        self.sets = sets
        self.fetched: list[str] = []

    def __call__(self, url: str) -> dict[str, Any]:
        self.fetched.append(url)
        if url not in self.sets:
            raise OSError("connection refused")
        return self.sets[url]


@pytest.fixture
def keys() -> Keys:
    return Keys({JWKS_URL: EHR_JWKS, JWKS_URL_B: B_JWKS})


@pytest.fixture
def sources(engine: Engine) -> Engine:
    with session_scope(engine) as session:
        configure(session, make_source(session, "city"))
        configure(session, make_source(session, "north"), ISSUER_B, JWKS_URL_B)
    return engine


def verify(engine: Engine, keys: Keys, raw: str, *, aud: str = AUD, now: datetime = NOW) -> str:
    with session_scope(engine) as session:
        return verify_token(session, raw, audience=aud, now=now, jwks=JwksCache(keys)).source_name


def refused(engine: Engine, keys: Keys, raw: str, **kw: Any) -> str:
    with pytest.raises(CdsUnauthorized) as caught:
        verify(engine, keys, raw, **kw)
    return caught.value.reason


def test_rs384_and_es384_tokens_of_a_configured_issuer_name_its_source(sources: Engine, keys: Keys) -> None:
    assert verify(sources, keys, token(NOW, AUD)) == "city"
    assert verify(sources, keys, token(NOW, AUD, key=EC_KEY, kid="ec-1", alg="ES384")) == "city"
    assert verify(sources, keys, token(NOW, [AUD], key=B_KEY, kid="north-1", iss=ISSUER_B)) == "north"  # aud as a list
    with session_scope(sources) as session:
        seen = session.exec(select(CdsTokenSeen)).all()
    assert len(seen) == 3 and {s.issuer for s in seen} == {ISSUER, ISSUER_B}


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: token(NOW, AUD, key=OTHER_RSA_KEY), "bad signature"),  # right kid, another key
        (lambda: token(NOW, AUD.replace("patient-view", "encounter-discharge")), "aud is not this endpoint"),
        (lambda: token(NOW - timedelta(minutes=10), AUD), "expired"),
        (lambda: token(NOW, AUD, kid="rsa-9"), "unknown kid"),
        (lambda: token(NOW, AUD, kid=None), "kid missing"),
        (lambda: jwt.encode({"iss": ISSUER, "aud": AUD, "exp": 1e10, "jti": "x"}, "", algorithm="none"), "algorithm"),
        (
            lambda: token(NOW, AUD, key="a-shared-secret-long-enough-for-hs384-0123456789abcdef", alg="HS384"),
            "algorithm",
        ),
        (lambda: token(NOW, AUD, alg="RS256"), "algorithm"),  # not accepted unless the source lists it
        (lambda: token(NOW, AUD, iss="https://intruder.test/"), "unknown issuer"),
        (lambda: token(NOW, AUD, key=B_KEY, kid="north-1"), "unknown kid"),  # north's key, city's issuer
        (lambda: token(NOW, AUD, lifetime=timedelta(days=1)), "exp too far ahead"),
        (lambda: token(NOW, AUD, drop=("iat",)), "iat missing"),
        (lambda: token(NOW, AUD, drop=("jti",)), "jti missing"),
        (lambda: token(NOW, AUD, drop=("exp",)), "exp missing"),
        (lambda: token(NOW, AUD, headers={"jku": "https://intruder.test/keys"}), "jku not allowed"),
        (lambda: "not.a.jwt", "not a JWT"),
    ],
)
def test_a_wrong_token_is_refused_with_its_reason(sources: Engine, keys: Keys, make: Any, reason: str) -> None:
    assert refused(sources, keys, make()).startswith(reason)


def test_a_replayed_jti_is_refused_until_its_token_expires_then_forgotten(sources: Engine, keys: Keys) -> None:
    raw = token(NOW, AUD, jti="once")
    assert verify(sources, keys, raw) == "city"
    assert refused(sources, keys, raw) == "jti already used (replay)"
    # the same jti in a new token (another signature) is still a replay
    assert refused(sources, keys, token(NOW + timedelta(minutes=1), AUD, jti="once")) == "jti already used (replay)"
    later = NOW + timedelta(hours=2)
    verify(sources, keys, token(later, AUD), now=later)  # any call purges the expired ids
    with session_scope(sources) as session:
        assert session.get(CdsTokenSeen, "once") is None


def test_the_jwk_set_is_cached_and_fetched_again_once_for_an_unknown_kid(sources: Engine, keys: Keys) -> None:
    cache = JwksCache(keys)
    with session_scope(sources) as session:
        verify_token(session, token(NOW, AUD), audience=AUD, now=NOW, jwks=cache)
        verify_token(session, token(NOW, AUD), audience=AUD, now=NOW, jwks=cache)
        assert keys.fetched == [JWKS_URL]
        # the EHR rotates to a new key: the unknown kid costs one fetch, then verifies
        keys.sets[JWKS_URL] = jwks((OTHER_RSA_KEY, "rsa-2"))
        verify_token(session, token(NOW, AUD, key=OTHER_RSA_KEY, kid="rsa-2"), audience=AUD, now=NOW, jwks=cache)
        assert keys.fetched == [JWKS_URL, JWKS_URL]
        with pytest.raises(CdsUnauthorized, match="unknown kid"):
            verify_token(session, token(NOW, AUD, kid="rsa-9"), audience=AUD, now=NOW, jwks=cache)
        assert keys.fetched == [JWKS_URL] * 3  # once more, not a loop


def test_jwk_set_unreachable_is_a_refusal(sources: Engine) -> None:
    assert refused(sources, Keys({}), token(NOW, AUD)) == "the issuer's JWK Set could not be fetched"


def test_a_jku_is_followed_only_when_allow_listed(engine: Engine, keys: Keys) -> None:
    other = "https://keys.city.test/jwks"
    keys.sets[other] = jwks((OTHER_RSA_KEY, "k2"))
    with session_scope(engine) as session:
        configure(session, make_source(session, "city"), jku_allow=[other])
    assert verify(engine, keys, token(NOW, AUD, key=OTHER_RSA_KEY, kid="k2", headers={"jku": other})) == "city"
    assert keys.fetched == [other]


def test_rs256_and_es256_only_when_the_source_lists_them(engine: Engine, keys: Keys) -> None:
    with session_scope(engine) as session:
        configure(session, make_source(session, "city"), algorithms=["RS384", "RS256"])
    assert verify(engine, keys, token(NOW, AUD, alg="RS256")) == "city"
    assert refused(engine, keys, token(NOW, AUD, key=EC_KEY, kid="ec-1", alg="ES384")).startswith("algorithm")


def test_a_key_published_for_another_algorithm_is_refused(engine: Engine) -> None:
    keys = Keys({JWKS_URL: {"keys": [{**EHR_JWKS["keys"][0], "alg": "RS512"}]}})
    with session_scope(engine) as session:
        configure(session, make_source(session, "city"))
    assert refused(engine, keys, token(NOW, AUD)) == "the key is not for this algorithm"


def test_a_token_within_the_leeway_passes_and_one_past_it_does_not(sources: Engine, keys: Keys) -> None:
    issued = NOW - timedelta(minutes=5, seconds=10)  # expired 10 s ago, leeway 30 s
    assert verify(sources, keys, token(issued, AUD)) == "city"
    assert refused(sources, keys, token(NOW - timedelta(minutes=6), AUD)) == "expired"
