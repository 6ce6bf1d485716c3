"""Shared fixtures for the FHIR edge tests: a recorded no-op sleep, a fake clock, signing keys."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fhir_testkit import BASE, FakeClock

from discharge_bridge.fhir import FhirClient, RetryPolicy


@pytest.fixture
def sleeps() -> list[float]:
    """Delays the retry policy asked for, in order (nothing really sleeps)."""
    return []


@pytest.fixture
def retry(sleeps: list[float]) -> RetryPolicy:
    return RetryPolicy(sleep=sleeps.append)


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


@pytest.fixture
def client(retry: RetryPolicy, mock: respx.MockRouter) -> Iterator[FhirClient]:
    with FhirClient(BASE, retry=retry) as fhir:
        yield fhir


@pytest.fixture
def clock() -> FakeClock:
    # Starts at the real time so assertions signed with it pass pyjwt's exp/iat checks.
    return FakeClock(time.time())


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture
def rsa_key_file(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> Path:
    path = tmp_path / "client-rs384.pem"
    path.write_bytes(_pem(rsa_key))
    return path


@pytest.fixture
def ec_key_file(tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey) -> Path:
    path = tmp_path / "client-es384.pem"
    path.write_bytes(_pem(ec_key))
    return path
