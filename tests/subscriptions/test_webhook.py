"""The webhook: its secret, and notifications through the ingest path (stub EHR, SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from discharge_bridge.assessment import drain
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.ingest.models import ClinicalSnapshot, DeadLetter, EncounterSnapshot
from discharge_bridge.sources.models import SyncRun
from discharge_bridge.subscriptions.inbox import process_inbox
from discharge_bridge.subscriptions.models import SourceSubscription, SubscriptionKind, WebhookNotification
from discharge_bridge.subscriptions.service import SECRET_HEADER
from tests.subscriptions.conftest import HEADERS, SECRET, Subscribe
from tests.subscriptions.notes import backport
from tests.subscriptions.stub_ehr import StubEhr
from tests.support.factories import api_client
from tests.support.fakefhir import condition, encounter, patient


def _worklist(settings: Settings) -> list[str]:
    with api_client(settings) as client:
        response = client.get("/api/v1/worklist")
    assert response.status_code == 200, response.text
    return [item["encounter"] for item in response.json()["items"]]


def _runs(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return list(session.exec(select(SyncRun.kind).order_by(col(SyncRun.id))))


def _versions(engine: Engine) -> dict[str, str | None]:
    with Session(engine) as session:
        return dict(session.exec(select(EncounterSnapshot.fhir_id, EncounterSnapshot.version_id)).all())


def _inbox(engine: Engine) -> list[WebhookNotification]:
    with Session(engine) as session:
        return list(session.exec(select(WebhookNotification)))


def _admitted(ehr: StubEhr, eid: str = "e1", pid: str = "p1") -> dict[str, Any]:
    """An 86-year-old with dementia on the EHR; returns the Encounter as stored there."""
    ehr.put(patient(pid))
    ehr.put(condition(f"c-{pid}", pid))
    return ehr.put(encounter(eid, pid))


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/webhooks/city", {}),
        ("/webhooks/city", {SECRET_HEADER: "guess"}),
        ("/webhooks/city", {SECRET_HEADER: SECRET + "x"}),
        ("/webhooks/city", {"Authorization": f"Bearer {SECRET}"}),
        ("/webhooks/nowhere", HEADERS),
        ("/webhooks/city/Encounter/e1", {SECRET_HEADER: ""}),
    ],
)
def test_forged_notifications_get_401_and_leave_no_trace(
    subscribe: Subscribe, webhook: TestClient, engine: Engine, ehr: StubEhr, path: str, headers: dict[str, str]
) -> None:
    subscribe()
    seen = len(ehr.requests)
    response = webhook.put(path, content=orjson.dumps(encounter("e1", "p1")), headers=headers)
    assert response.status_code == 401
    assert SECRET not in response.text
    assert _inbox(engine) == [] and _versions(engine) == {}
    assert len(ehr.requests) == seen


def test_a_source_that_is_not_subscribed_accepts_nothing(engine: Engine, webhook: TestClient) -> None:
    from tests.support.factories import make_source

    with session_scope(engine) as session:
        make_source(session)
    assert webhook.post("/webhooks/city", content=b"", headers=HEADERS).status_code == 401


def test_classic_full_resource_reaches_the_worklist_without_a_poll(
    subscribe: Subscribe, webhook: TestClient, engine: Engine, settings: Settings, ehr: StubEhr
) -> None:
    subscribe()
    enc = _admitted(ehr)
    ehr.requests.clear()

    response = webhook.put("/webhooks/city/Encounter/e1", content=orjson.dumps(enc), headers=HEADERS)

    assert response.status_code == 200 and response.json()["resourceType"] == "OperationOutcome"
    assert _worklist(settings) == ["e1"]
    assert _runs(engine) == ["push"]
    asked = {r.url.path.rsplit("/", 1)[-1] for r in ehr.requests}
    assert asked == {"Patient", "Condition", "Observation", "RelatedPerson", "Encounter"}  # first-sight record
    assert not any("class=" in str(r.url) for r in ehr.requests)  # no poll search
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(ClinicalSnapshot)).one() == 1
    assert _inbox(engine) == []


def test_duplicates_and_reordered_versions_keep_the_newest(
    subscribe: Subscribe, webhook: TestClient, engine: Engine, ehr: StubEhr
) -> None:
    subscribe()
    v1 = _admitted(ehr)
    v2 = ehr.put(encounter("e1", "p1", status="onleave"))
    v3 = ehr.put(encounter("e1", "p1", status="in-progress"))
    for version in (v2, v3, v1, v3, v2):  # out of order, with repeats
        response = webhook.put("/webhooks/city/Encounter/e1", content=orjson.dumps(version), headers=HEADERS)
        assert response.status_code == 200
    assert _versions(engine) == {"e1": "3"}
    with Session(engine) as session:
        status = session.exec(select(EncounterSnapshot.status)).one()
    assert status == "in-progress"
    # a first-sight record is read once: the later notifications find the patient known
    assert sum(r.url.path.endswith("/Condition") for r in ehr.requests) == 1


def test_backport_id_only_events_are_reread_and_counted(
    subscribe: Subscribe, webhook: TestClient, engine: Engine, settings: Settings, ehr: StubEhr
) -> None:
    (row,) = subscribe(
        kind=SubscriptionKind.backport, topics=("http://ehr.test/topic/admission",), heartbeat_seconds=60
    )
    sid = row.server_id
    assert sid is not None
    hand = backport("handshake", sid, events_since=0, status="requested")
    assert webhook.post("/webhooks/city", content=orjson.dumps(hand), headers=HEADERS).status_code == 200
    _admitted(ehr)
    ehr.put(encounter("e1", "p1", status="in-progress"))  # v2 on the EHR: the re-read gets the newest

    note = backport("event-notification", sid, events_since=1, events=[(1, "Encounter/e1")])
    assert webhook.post("/webhooks/city", content=orjson.dumps(note), headers=HEADERS).status_code == 200

    assert _versions(engine) == {"e1": "2"}
    assert _worklist(settings) == ["e1"]
    with Session(engine) as session:
        stored = session.exec(select(SourceSubscription)).one()
    assert (stored.status, stored.last_event_number, stored.missing_events) == ("active", 1, [])
    assert stored.last_notification_at is not None


def test_empty_notifications_poll_from_the_cursor(
    subscribe: Subscribe, webhook: TestClient, engine: Engine, settings: Settings, ehr: StubEhr
) -> None:
    subscribe(content="empty")
    _admitted(ehr)
    assert webhook.post("/webhooks/city", content=b"", headers=HEADERS).status_code == 200
    assert _runs(engine) == ["poll"]
    assert _worklist(settings) == ["e1"]
    assert "payload" not in next(iter(ehr.subscriptions.values()))["channel"]


def test_a_body_that_is_not_a_notification_is_refused_and_kept_as_a_dead_letter(
    subscribe: Subscribe, webhook: TestClient, engine: Engine
) -> None:
    subscribe()
    assert webhook.post("/webhooks/city", content=b"{broken", headers=HEADERS).status_code == 400
    mismatch = webhook.put("/webhooks/city/Encounter/e9", content=orjson.dumps(encounter("e1", "p1")), headers=HEADERS)
    assert mismatch.status_code == 400
    with Session(engine) as session:
        errors = sorted(session.exec(select(DeadLetter.error)))
    assert errors == [
        "webhook notification: the URL and the body name different resources",
        "webhook notification: the body is not JSON",
    ]
    assert _inbox(engine) == []


def test_unusable_pushed_resources_become_dead_letters(
    subscribe: Subscribe, webhook: TestClient, engine: Engine
) -> None:
    subscribe()
    bad = encounter("e1", "p1")
    del bad["subject"]
    assert webhook.put("/webhooks/city/Encounter/e1", content=orjson.dumps(bad), headers=HEADERS).status_code == 200
    with Session(engine) as session:
        letter = session.exec(select(DeadLetter)).one()
    assert (letter.fhir_id, letter.error) == ("e1", "Encounter has no subject reference to a Patient")


def test_an_acknowledged_notification_waits_in_the_inbox_until_the_ehr_answers(
    subscribe: Subscribe, webhook: TestClient, engine: Engine, settings: Settings, ehr: StubEhr
) -> None:
    (row,) = subscribe(kind=SubscriptionKind.backport, topics=("http://ehr.test/topic/admission",))
    _admitted(ehr)
    ehr.fail = lambda request: httpx.Response(503)
    note = backport("event-notification", row.server_id or "", events_since=1, events=[(1, "Encounter/e1")])

    assert webhook.post("/webhooks/city", content=orjson.dumps(note), headers=HEADERS).status_code == 200
    (waiting,) = _inbox(engine)
    assert waiting.attempts == 1 and "503" in (waiting.error or "")
    assert _versions(engine) == {}

    ehr.fail = None
    assert waiting.source_id is not None
    outcome = process_inbox(waiting.source_id, engine=engine, settings=settings)
    drain(engine, settings)  # as the scheduler's assessment job does
    assert outcome is not None and (outcome.processed, outcome.failed) == (1, 0)
    assert _inbox(engine) == [] and _versions(engine) == {"e1": "1"}
    assert _worklist(settings) == ["e1"]


def test_unsubscribing_first_ingests_what_was_acknowledged(
    subscribe: Subscribe, webhook: TestClient, engine: Engine, settings: Settings, ehr: StubEhr, fhir: Any
) -> None:
    from discharge_bridge.subscriptions.service import unsubscribe_source

    subscribe()
    enc = _admitted(ehr)
    ehr.fail = lambda request: httpx.Response(503) if "/Subscription" not in request.url.path else None
    assert webhook.put("/webhooks/city/Encounter/e1", content=orjson.dumps(enc), headers=HEADERS).status_code == 200
    assert len(_inbox(engine)) == 1
    ehr.fail = None
    assert unsubscribe_source("city", engine=engine, client=fhir, settings=settings) == []
    assert _inbox(engine) == [] and _versions(engine) == {"e1": "1"}
