"""Recovery of a broken push channel: counter gaps, missed heartbeats, a Subscription in error."""

from __future__ import annotations

from datetime import timedelta

import httpx
import orjson
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope, utcnow
from discharge_bridge.fhir import FhirClient
from discharge_bridge.ingest.models import EncounterSnapshot
from discharge_bridge.sources.models import Source, SyncRun
from discharge_bridge.subscriptions.models import SourceSubscription, SubscriptionKind
from discharge_bridge.subscriptions.recovery import RecoveryReason, check_all_subscriptions, check_subscription
from tests.subscriptions.conftest import HEADERS, SECRET, Subscribe
from tests.subscriptions.notes import backport
from tests.subscriptions.stub_ehr import StubEhr
from tests.support.factories import api_client
from tests.support.fakefhir import condition, encounter, patient

TOPIC = "http://ehr.test/topic/admission"


def _admit(ehr: StubEhr, n: int) -> None:
    ehr.put(patient(f"p{n}"))
    ehr.put(condition(f"c{n}", f"p{n}"))
    ehr.put(encounter(f"e{n}", f"p{n}"))


def _stored(engine: Engine) -> set[str]:
    with Session(engine) as session:
        return set(session.exec(select(EncounterSnapshot.fhir_id)))


def _row(engine: Engine) -> SourceSubscription:
    with Session(engine) as session:
        return session.exec(select(SourceSubscription)).one()


def _polls(engine: Engine) -> int:
    with Session(engine) as session:
        return len(list(session.exec(select(SyncRun.id).where(SyncRun.kind == "poll"))))


def _puts(ehr: StubEhr) -> list[httpx.Request]:
    return [r for r in ehr.requests if r.method == "PUT" and "/Subscription/" in r.url.path]


def _event(webhook: TestClient, sid: str, number: int) -> None:
    note = backport("event-notification", sid, events_since=number, events=[(number, f"Encounter/e{number}")])
    assert webhook.post("/webhooks/city", content=orjson.dumps(note), headers=HEADERS).status_code == 200


def test_a_gap_that_stays_open_triggers_a_catch_up_poll_and_reactivation(
    subscribe: Subscribe, webhook: TestClient, engine: Engine, settings: Settings, ehr: StubEhr, fhir: FhirClient
) -> None:
    (row,) = subscribe(kind=SubscriptionKind.backport, topics=(TOPIC,))
    assert row.id is not None and row.server_id is not None
    for n in (1, 2, 3):
        _admit(ehr, n)
    _event(webhook, row.server_id, 1)
    _event(webhook, row.server_id, 3)  # event 2 never comes
    assert _stored(engine) == {"e1", "e3"} and _row(engine).missing_events == [2]

    early = check_subscription(row.id, engine=engine, settings=settings, client=fhir)
    assert (early.reasons, early.recovered, _polls(engine)) == ([], False, 0)  # may still be in flight

    ehr.events_since[row.server_id] = 3
    late = check_subscription(
        row.id, engine=engine, settings=settings, client=fhir, now=utcnow() + timedelta(seconds=20)
    )
    assert late.reasons == [RecoveryReason.event_gap] and late.recovered, late.error
    assert _stored(engine) == {"e1", "e2", "e3"}
    assert _polls(engine) == 1 and len(_puts(ehr)) == 1
    stored = _row(engine)
    assert (stored.recoveries, stored.missing_events, stored.last_event_number) == (1, [], 3)
    assert stored.last_recovery_reason == "events missing from the event counter"
    with api_client(settings) as client:
        push = client.get("/api/v1/sources/city").json()["push"]
    assert push[0]["recoveries"] == 1 and push[0]["secret_from"] == "env CITY_HOOK_SECRET"


def test_a_subscription_the_ehr_put_in_error_is_reactivated_and_caught_up(
    subscribe: Subscribe, engine: Engine, settings: Settings, ehr: StubEhr, fhir: FhirClient
) -> None:
    (row,) = subscribe()
    assert row.id is not None and row.server_id is not None
    ehr.subscriptions[row.server_id]["status"] = "error"  # delivery failed three times: nothing more is sent
    _admit(ehr, 5)

    outcome = check_subscription(row.id, engine=engine, settings=settings, client=fhir)

    assert outcome.reasons == [RecoveryReason.server_error] and outcome.recovered
    assert outcome.server_status == "error"
    assert ehr.subscriptions[row.server_id]["status"] == "active"
    put = orjson.loads(_puts(ehr)[0].content)
    assert (put["status"], put["channel"]["header"]) == ("requested", [f"X-Discharge-Bridge-Secret: {SECRET}"])
    assert _stored(engine) == {"e5"}
    with Session(engine) as session:
        source = session.exec(select(Source)).one()
    assert source.last_error is None  # recovered: the catch-up poll succeeded


def test_a_subscription_gone_from_the_ehr_is_created_again(
    subscribe: Subscribe, engine: Engine, settings: Settings, ehr: StubEhr, fhir: FhirClient
) -> None:
    (row,) = subscribe()
    assert row.id is not None and row.server_id is not None
    del ehr.subscriptions[row.server_id]
    outcome = check_subscription(row.id, engine=engine, settings=settings, client=fhir)
    assert outcome.reasons == [RecoveryReason.server_missing] and outcome.recovered
    stored = _row(engine)
    assert stored.server_id in ehr.subscriptions and stored.server_id != row.server_id


def test_a_missed_heartbeat_counts_as_a_broken_channel(
    subscribe: Subscribe, webhook: TestClient, engine: Engine, settings: Settings, ehr: StubEhr, fhir: FhirClient
) -> None:
    (row,) = subscribe(kind=SubscriptionKind.backport, topics=(TOPIC,), heartbeat_seconds=60)
    assert row.id is not None and row.server_id is not None
    beat = backport("heartbeat", row.server_id, events_since=0)
    assert webhook.post("/webhooks/city", content=orjson.dumps(beat), headers=HEADERS).status_code == 200
    quiet = check_subscription(
        row.id, engine=engine, settings=settings, client=fhir, now=utcnow() + timedelta(seconds=90)
    )
    assert quiet.reasons == [] and _puts(ehr) == []

    silent = check_subscription(
        row.id, engine=engine, settings=settings, client=fhir, now=utcnow() + timedelta(seconds=150)
    )
    assert silent.reasons == [RecoveryReason.heartbeat_missed] and silent.recovered
    assert len(_puts(ehr)) == 1 and _polls(engine) == 1


def test_a_recovery_that_fails_is_recorded_on_the_source(
    subscribe: Subscribe, engine: Engine, settings: Settings, ehr: StubEhr, fhir: FhirClient
) -> None:
    (row,) = subscribe(kind=SubscriptionKind.backport, topics=(TOPIC,), heartbeat_seconds=30)
    assert row.id is not None
    with session_scope(engine) as session:
        stored = session.get(SourceSubscription, row.id)
        assert stored is not None
        stored.status, stored.last_notification_at = "active", utcnow() - timedelta(minutes=5)
    ehr.fail = lambda request: httpx.Response(503)

    outcome = check_subscription(row.id, engine=engine, settings=settings, client=fhir)

    assert outcome.reasons == [RecoveryReason.heartbeat_missed] and not outcome.recovered
    assert (
        outcome.error is not None
        and "re-activation failed" in outcome.error
        and "catch-up poll failed" in outcome.error
    )
    with Session(engine) as session:
        source = session.exec(select(Source)).one()
        stored = session.exec(select(SourceSubscription)).one()
    assert source.last_error is not None and source.last_error.startswith("push: no heartbeat within two periods")
    assert stored.recoveries == 1 and stored.last_error == outcome.error


def test_the_job_checks_every_subscription(
    subscribe: Subscribe, engine: Engine, settings: Settings, ehr: StubEhr
) -> None:
    rows = subscribe(criteria=("Encounter?class=IMP", "Condition?code=F03.90"))
    for row in rows:
        assert row.server_id is not None
        ehr.subscriptions[row.server_id]["status"] = "off"
    outcomes = check_all_subscriptions(engine, settings)
    assert [o.reasons for o in outcomes] == [[RecoveryReason.server_error]] * 2
    assert all(o.recovered for o in outcomes)
    with Session(engine) as session:
        counts = list(session.exec(select(SourceSubscription.recoveries).order_by(col(SourceSubscription.id))))
    assert counts == [1, 1]
