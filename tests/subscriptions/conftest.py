"""Push tests: a stub EHR behind every client the push path builds, and a subscribed source."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from discharge_bridge.app import create_app
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.fhir import FhirClient, RetryPolicy
from discharge_bridge.subscriptions import inbox
from discharge_bridge.subscriptions.models import SourceSubscription
from discharge_bridge.subscriptions.service import SECRET_HEADER, SubscribeRequest, subscribe_source
from tests.subscriptions.stub_ehr import StubEhr
from tests.support.factories import make_source
from tests.support.fakefhir import BASE

SECRET = "hook-s3cret-for-tests"
SECRET_ENV = "CITY_HOOK_SECRET"
HEADERS = {SECRET_HEADER: SECRET}


@pytest.fixture
def ehr() -> StubEhr:
    return StubEhr()


@pytest.fixture
def fhir(ehr: StubEhr) -> Iterator[FhirClient]:
    with FhirClient(BASE, transport=ehr.transport(), retry=RetryPolicy(max_attempts=2, sleep=lambda s: None)) as c:
        yield c


@pytest.fixture
def stub_connections(monkeypatch: pytest.MonkeyPatch, ehr: StubEhr) -> Iterator[None]:
    """The webhook's background drain builds its own clients: point them at the stub."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    monkeypatch.setattr(
        inbox,
        "client_for",
        lambda source, **kw: FhirClient(BASE, transport=ehr.transport(), retry=RetryPolicy(sleep=lambda s: None)),
    )
    inbox._clients.clear()
    yield
    inbox._clients.clear()


Subscribe = Callable[..., list[SourceSubscription]]


@pytest.fixture
def subscribe(engine: Engine, fhir: FhirClient, stub_connections: None) -> Subscribe:
    def run(**request: Any) -> list[SourceSubscription]:
        with session_scope(engine) as session:
            make_source(session)
        fields = {"public_url": "https://bridge.test", "secret_env": SECRET_ENV} | request
        return subscribe_source("city", SubscribeRequest(**fields), engine=engine, client=fhir)

    return run


@pytest.fixture
def webhook(settings: Settings, stub_connections: None) -> TestClient:
    """No API token: the webhook authenticates by its secret alone."""
    return TestClient(create_app(settings))
