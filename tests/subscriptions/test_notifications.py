"""Reading webhook bodies, and keeping count of Backport events (pure: no database, no HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from discharge_bridge.subscriptions.counters import gap_due, heartbeat_overdue, note_received
from discharge_bridge.subscriptions.models import SourceSubscription, SubscriptionKind, SubscriptionStatus
from discharge_bridge.subscriptions.notifications import (
    InvalidNotification,
    NotificationType,
    parse_notification,
)
from tests.subscriptions.notes import TOPIC, backport
from tests.support.fakefhir import encounter, patient

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def _body(value: object) -> bytes:
    return orjson.dumps(value)


def test_classic_payloads_empty_posts_and_bundles() -> None:
    enc = encounter("e1", "p1")
    note = parse_notification(_body(enc), path_type="Encounter", path_id="e1")
    assert (note.type, note.backport, note.resources) == (NotificationType.resource, False, [enc])
    assert parse_notification(b"").type == NotificationType.ping
    assert parse_notification(b"  \n").type == NotificationType.ping
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": enc}, {"resource": patient("p1")}]}
    assert [r["id"] for r in parse_notification(_body(bundle)).resources] == ["e1", "p1"]


@pytest.mark.parametrize(
    ("body", "path", "reason"),
    [
        (b"{not json", (None, None), "not JSON"),
        (b"[1, 2]", (None, None), "not a FHIR resource"),
        (b'{"id": "x"}', (None, None), "not a FHIR resource"),
        (orjson.dumps(encounter("e2", "p1")), ("Encounter", "e1"), "different resources"),
        (orjson.dumps(encounter("e1", "p1")), ("Patient", "e1"), "different resources"),
    ],
)
def test_bodies_that_are_not_notifications(body: bytes, path: tuple[str | None, str | None], reason: str) -> None:
    with pytest.raises(InvalidNotification, match=reason):
        parse_notification(body, path_type=path[0], path_id=path[1])


def test_backport_handshake_heartbeat_and_events() -> None:
    hand = parse_notification(_body(backport("handshake", "s1", events_since=0, status="requested")))
    assert (hand.type, hand.backport, hand.subscription, hand.topic) == (NotificationType.handshake, True, "s1", TOPIC)
    beat = parse_notification(_body(backport("heartbeat", "s1", events_since=7)))
    assert (beat.type, beat.events_since, beat.event_numbers) == (NotificationType.heartbeat, 7, [])

    full = encounter("e1", "p1")
    event = parse_notification(
        _body(
            backport(
                "event-notification",
                "s1",
                events_since=9,
                events=[(8, "Encounter/e1"), (9, "Encounter/e2")],
                resources=[full],
            )
        )
    )
    assert event.type == NotificationType.event and event.events_since == 9
    assert event.event_numbers == [8, 9]
    assert event.resources == [full]
    assert event.focus == [("Encounter", "e2")]  # e1 came in full: only e2 needs a re-read


def test_r4b_subscription_status_form() -> None:
    status = {
        "resourceType": "SubscriptionStatus",
        "type": "event-notification",
        "status": "active",
        "subscription": {"reference": "https://ehr.example/fhir/Subscription/abc"},
        "topic": TOPIC,
        "eventsSinceSubscriptionStart": 12,
        "notificationEvent": [{"eventNumber": 12, "focus": {"reference": "Encounter/e5/_history/3"}}],
    }
    note = parse_notification(_body({"resourceType": "Bundle", "type": "history", "entry": [{"resource": status}]}))
    assert (note.subscription, note.events_since, note.event_numbers, note.focus) == (
        "abc",
        12,
        [12],
        [("Encounter", "e5")],
    )


def test_a_backport_bundle_without_a_type_is_refused() -> None:
    body = backport("heartbeat", "s1", events_since=1)
    body["entry"][0]["resource"]["parameter"] = [
        p for p in body["entry"][0]["resource"]["parameter"] if p["name"] != "type"
    ]
    with pytest.raises(InvalidNotification, match="type"):
        parse_notification(_body(body))


def _row(**kw: object) -> SourceSubscription:
    fields = {"source_id": 1, "kind": SubscriptionKind.backport, "criteria": TOPIC, "endpoint": "https://b/webhooks/c"}
    return SourceSubscription(**(fields | kw), created_at=T0)  # type: ignore[arg-type]


def _event(numbers: list[int], since: int | None = None) -> object:
    events = [(n, f"Encounter/e{n}") for n in numbers]
    return parse_notification(
        _body(backport("event-notification", "s1", events_since=since or max(numbers), events=events))
    )


def test_counter_absorbs_duplicates_and_late_events_and_keeps_real_gaps() -> None:
    row = _row()
    note_received(row, _event([1]), T0)
    note_received(row, _event([1]), T0)  # duplicate
    assert (row.last_event_number, row.missing_events, row.gap_noticed_at) == (1, [], None)

    note_received(row, _event([4]), T0)  # 2 and 3 not (yet) here
    assert (row.last_event_number, row.missing_events, row.gap_noticed_at) == (4, [2, 3], T0)
    note_received(row, _event([3]), T0 + timedelta(seconds=1))  # late: out of order
    assert row.missing_events == [2]
    assert not gap_due(row, T0 + timedelta(seconds=5), 15)
    assert gap_due(row, T0 + timedelta(seconds=16), 15)
    note_received(row, _event([2]), T0 + timedelta(seconds=17))
    assert (row.missing_events, row.gap_noticed_at) == ([], None)
    assert not gap_due(row, T0 + timedelta(seconds=60), 15)


def test_a_heartbeat_ahead_of_the_events_seen_opens_a_gap_and_a_handshake_can_reset() -> None:
    row = _row()
    note_received(row, _event([1, 2]), T0)
    note_received(row, parse_notification(_body(backport("heartbeat", "s1", events_since=5))), T0)
    assert (row.last_event_number, row.missing_events) == (5, [3, 4, 5])
    note_received(row, parse_notification(_body(backport("handshake", "s1", events_since=0, status="requested"))), T0)
    assert (row.last_event_number, row.missing_events, row.status) == (0, [], SubscriptionStatus.active)


def test_heartbeat_overdue_after_two_periods_of_silence() -> None:
    row = _row(heartbeat_seconds=60, status=SubscriptionStatus.active, last_notification_at=T0)
    assert not heartbeat_overdue(row, T0 + timedelta(seconds=119))
    assert heartbeat_overdue(row, T0 + timedelta(seconds=121))
    assert not heartbeat_overdue(
        _row(status=SubscriptionStatus.active, last_notification_at=T0), T0 + timedelta(days=1)
    )
    requested = _row(heartbeat_seconds=60, status=SubscriptionStatus.requested, last_notification_at=T0)
    assert not heartbeat_overdue(requested, T0 + timedelta(hours=1))
