"""The webhook with its secret right and an odd body or path: a 4xx (or the 200 of a notification it
could read), never a 500, on SQLite and PostgreSQL (which refuses a NUL in any text, the dead letter's
copy of the body included)."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from discharge_bridge.app import create_app
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.ingest.models import DeadLetter
from discharge_bridge.subscriptions.counters import MAX_MISSING
from discharge_bridge.subscriptions.models import SourceSubscription, SubscriptionKind
from discharge_bridge.validation import INT_MAX
from tests.subscriptions.conftest import HEADERS, Subscribe
from tests.subscriptions.notes import backport

pytestmark = pytest.mark.clock


def _bundle(status: dict[str, Any]) -> bytes:
    return orjson.dumps({"resourceType": "Bundle", "type": "history", "entry": [{"resource": status}]})


def _status(**fields: Any) -> dict[str, Any]:
    return {"resourceType": "SubscriptionStatus", "type": "event-notification", **fields}


ODD_BODIES = {
    "nul bytes": b"\x00\x00\x00",
    "nul inside json": b'{"resourceType": "Encounter", "id": "e1"\x00}',
    "latin-1": '{"resourceType": "Encounter", "id": "é"}'.encode("latin-1"),
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "a list": b"[1, 2, 3]",
    "a number": b"18446744073709551616",
    "a huge integer inside": b'{"resourceType": "Encounter", "id": "e1", "n": 18446744073709551616}',
    "events not a list": _bundle(_status(notificationEvent=5)),
    "event number in other digits": _bundle(_status(eventsSinceSubscriptionStart="²")),
    "events since beyond 64 bits": _bundle(_status(eventsSinceSubscriptionStart="99999999999999999999999")),
    "parameters not a list": _bundle({"resourceType": "Parameters", "parameter": 7}),
    "a parameter's count in other digits": _bundle(
        {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "type", "valueCode": "event-notification"},
                {"name": "events-since-subscription-start", "valueString": "٣"},
            ],
        }
    ),
    "entries not a list": orjson.dumps({"resourceType": "Bundle", "type": "history", "entry": {"a": 1}}),
    "carried entries not a list": orjson.dumps(
        {"resourceType": "Bundle", "type": "history", "entry": [{"resource": _status()}, 5]}
    ),
    "subscription a number": _bundle(_status(subscription=5, notificationEvent=[{"focus": 3, "eventNumber": "x"}])),
}


@pytest.fixture
def hook(subscribe: Subscribe, settings: Settings) -> TestClient:
    subscribe()
    return TestClient(create_app(settings), raise_server_exceptions=False)


@pytest.mark.parametrize("body", ODD_BODIES.values(), ids=ODD_BODIES.keys())
def test_an_odd_body_with_the_right_secret_is_not_a_500(hook: TestClient, engine: Engine, body: bytes) -> None:
    for method in ("POST", "PUT"):
        response = hook.request(method, "/webhooks/city", content=body, headers=HEADERS)
        assert response.status_code in (200, 400), (response.status_code, response.text[:300])
        if response.status_code == 400:
            with session_scope(engine) as session:
                letters = session.exec(select(DeadLetter.payload)).all()
            assert letters and all("\x00" not in str(raw) for raw in letters)


@pytest.mark.parametrize(
    "path",
    [
        "/webhooks/city/Enc%00ounter/e1",
        "/webhooks/city/Encounter/e%001",
        "/webhooks/city/Encounter/" + "e" * 70,
        "/webhooks/city/" + "E" * 70 + "/e1",
        "/webhooks/ci%00ty",
        "/webhooks/" + "c" * 70,
    ],
)
def test_an_odd_path_is_a_4xx(hook: TestClient, path: str) -> None:
    body = orjson.dumps({"resourceType": "Encounter", "id": "e1", "status": "in-progress"})
    response = hook.put(path, content=body, headers=HEADERS)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])


@pytest.mark.parametrize("events_since", [INT_MAX + 1, 10**12, 2**64, 10**30])
def test_a_subscriptions_event_count_beyond_reason_is_taken_as_unknown(
    subscribe: Subscribe, settings: Settings, engine: Engine, events_since: int
) -> None:
    """A count no INTEGER column holds (or that would make billions of event numbers "missing") is not
    a count: the notification is taken, the counter left as it was, the request answered at once."""
    (row,) = subscribe(
        kind=SubscriptionKind.backport, topics=("http://ehr.test/topic/admission",), heartbeat_seconds=60
    )
    assert row.server_id is not None
    hook = TestClient(create_app(settings), raise_server_exceptions=False)
    started = time.monotonic()
    note = backport("heartbeat", row.server_id, events_since=events_since)
    response = hook.post("/webhooks/city", content=orjson.dumps(note), headers=HEADERS)
    assert response.status_code == 200 and time.monotonic() - started < 10
    with session_scope(engine) as session:
        stored = session.exec(select(SourceSubscription)).one()
    assert stored.last_event_number == 0 and stored.missing_events == []


def test_a_count_far_ahead_marks_a_bounded_number_of_events_missing(
    subscribe: Subscribe, settings: Settings, engine: Engine
) -> None:
    """Two billion events "missing" at once were two billion numbers in a set: the first MAX_MISSING are
    noted (any gap means a catch-up poll, which covers them all), at once."""
    (row,) = subscribe(
        kind=SubscriptionKind.backport, topics=("http://ehr.test/topic/admission",), heartbeat_seconds=60
    )
    assert row.server_id is not None
    hook = TestClient(create_app(settings), raise_server_exceptions=False)
    started = time.monotonic()
    note = backport("heartbeat", row.server_id, events_since=INT_MAX)
    assert hook.post("/webhooks/city", content=orjson.dumps(note), headers=HEADERS).status_code == 200
    assert time.monotonic() - started < 10
    with session_scope(engine) as session:
        stored = session.exec(select(SourceSubscription)).one()
    assert stored.last_event_number == INT_MAX and stored.missing_events == list(range(1, MAX_MISSING + 1))
