"""What a webhook body says: classic R4 rest-hook notifications and Backport IG notification bundles.

Pure: no database, no HTTP. Classic rest-hook sends the resource itself (often as
`PUT {endpoint}/{type}/{id}`) or, without a payload, an empty POST. The Backport IG sends a
`history` Bundle whose first entry is the subscription status: a `Parameters` in R4
(https://hl7.org/fhir/uv/subscriptions-backport/STU1.1/) or a `SubscriptionStatus` in R4B.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from discharge_bridge.fhir.fields import FHIR_ID, RESOURCE_TYPE, as_list, obj
from discharge_bridge.validation import INT_MAX, digits


class NotificationType(StrEnum):
    handshake = "handshake"
    heartbeat = "heartbeat"
    event = "event-notification"
    query_status = "query-status"
    query_event = "query-event"
    resource = "resource"  # classic rest-hook with a payload
    ping = "ping"  # classic rest-hook without a payload


class InvalidNotification(ValueError):
    """The body is not a notification this service can read (the reason never quotes the body)."""


@dataclass
class Notification:
    type: NotificationType
    backport: bool = False
    subscription: str | None = None  # the EHR's Subscription id (backport; classic bodies do not say)
    topic: str | None = None
    status: str | None = None
    events_since: int | None = None  # events-since-subscription-start
    event_numbers: list[int] = field(default_factory=list)
    focus: list[tuple[str, str]] = field(default_factory=list)  # (type, id) to re-read (id-only)
    resources: list[dict[str, Any]] = field(default_factory=list)  # full resources carried

    @property
    def carries_changes(self) -> bool:
        return self.type in (NotificationType.event, NotificationType.resource, NotificationType.ping)


def parse_notification(body: bytes, *, path_type: str | None = None, path_id: str | None = None) -> Notification:
    """Read a webhook body; `path_type`/`path_id` come from a classic `PUT {endpoint}/{type}/{id}`."""
    if not body.strip():
        return Notification(NotificationType.ping)
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidNotification("the body is not JSON") from None
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        raise InvalidNotification("the body is not a FHIR resource")
    if value["resourceType"] == "Bundle" and value.get("type") == "history":
        first = _first_resource(value)
        if first.get("resourceType") in ("Parameters", "SubscriptionStatus"):
            return _backport(value, first)
    if path_type is not None and (value["resourceType"] != path_type or value.get("id") != path_id):
        raise InvalidNotification("the URL and the body name different resources")
    if value["resourceType"] == "Bundle":
        resources = [r for e in as_list(value.get("entry")) if isinstance(r := obj(e).get("resource"), dict) and r]
        return Notification(NotificationType.resource, resources=resources)
    return Notification(NotificationType.resource, resources=[value])


def _first_resource(bundle: dict[str, Any]) -> dict[str, Any]:
    entries = bundle.get("entry") or []
    return obj(obj(entries[0]).get("resource")) if isinstance(entries, list) and entries else {}


def _backport(bundle: dict[str, Any], status: dict[str, Any]) -> Notification:
    parse = _from_parameters if status["resourceType"] == "Parameters" else _from_subscription_status
    note = parse(status)
    carried = {}
    for entry in as_list(bundle.get("entry"))[1:]:
        resource = obj(obj(entry).get("resource"))
        if isinstance(resource.get("resourceType"), str):
            carried[(resource["resourceType"], resource.get("id"))] = resource
    note.resources = list(carried.values())
    # id-only: the events name what changed, and only those not carried in full need a re-read.
    note.focus = [ref for ref in note.focus if ref not in carried]
    return note


def _type(value: Any) -> NotificationType:
    try:
        return NotificationType(value)
    except ValueError:
        raise InvalidNotification("the notification type is missing or unknown") from None


def _from_parameters(params: dict[str, Any]) -> Notification:
    note = Notification(NotificationType.heartbeat, backport=True)
    kind = None
    for p in as_list(params.get("parameter")):
        p = obj(p)
        name = p.get("name")
        if name == "type":
            kind = p.get("valueCode")
        elif name == "subscription":
            note.subscription = _subscription_id(obj(p.get("valueReference")).get("reference"))
        elif name == "topic":
            note.topic = p.get("valueCanonical") or p.get("valueUri")
        elif name == "status":
            note.status = p.get("valueCode")
        elif name in ("events-since-subscription-start", "eventsSinceSubscriptionStart"):
            note.events_since = _count(p)
        elif name in ("notification-event", "notificationEvent"):
            for part in as_list(p.get("part")):
                part = obj(part)
                if part.get("name") in ("event-number", "eventNumber"):
                    number = _count(part)
                    if number is not None:
                        note.event_numbers.append(number)
                elif part.get("name") == "focus":
                    ref = _reference(obj(part.get("valueReference")).get("reference"))
                    if ref is not None:
                        note.focus.append(ref)
    note.type = _type(kind)
    return note


def _from_subscription_status(status: dict[str, Any]) -> Notification:
    note = Notification(_type(status.get("type")), backport=True)
    note.subscription = _subscription_id(obj(status.get("subscription")).get("reference"))
    note.topic = status.get("topic")
    note.status = status.get("status")
    note.events_since = _number(status.get("eventsSinceSubscriptionStart"))
    for event in as_list(status.get("notificationEvent")):
        event = obj(event)
        number = _number(event.get("eventNumber"))
        if number is not None:
            note.event_numbers.append(number)
        ref = _reference(obj(event.get("focus")).get("reference"))
        if ref is not None:
            note.focus.append(ref)
    return note


def _count(param: dict[str, Any]) -> int | None:
    # The R4 backport carries int64 counters as valueString; some servers send integers.
    for key in ("valueString", "valueInteger64", "valueUnsignedInt", "valueInteger", "valueDecimal"):
        if key in param:
            return _number(param[key])
    return None


def _number(value: Any) -> int | None:
    """A count or an event number; None for anything else, or one no INTEGER column holds."""
    if isinstance(value, str):
        value = digits(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= INT_MAX:
        return value
    return None


def _reference(text: Any) -> tuple[str, str] | None:
    """(type, id) of a relative or absolute reference such as `https://ehr/fhir/Encounter/e1`."""
    if not isinstance(text, str):
        return None
    parts = text.split("?")[0].rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and RESOURCE_TYPE.match(parts[-2]) and FHIR_ID.match(parts[-1]):
        return parts[-2], parts[-1]
    return None


def _subscription_id(text: Any) -> str | None:
    ref = _reference(text)
    return ref[1] if ref is not None and ref[0] == "Subscription" else None
