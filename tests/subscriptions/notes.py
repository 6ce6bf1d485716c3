"""Notification bodies as EHRs send them (shapes from the R4 Backport IG and the EHR simulator)."""

from __future__ import annotations

from typing import Any

from tests.support.fakefhir import BASE

TOPIC = "http://ehr.test/fhir/SubscriptionTopic/encounter-start"


def backport(
    kind: str,
    subscription: str,
    *,
    events_since: int,
    events: list[tuple[int, str]] = (),  # type: ignore[assignment]
    resources: list[dict[str, Any]] = (),  # type: ignore[assignment]
    status: str = "active",
) -> dict[str, Any]:
    """A history Bundle: the status Parameters, then the resources carried (full-resource)."""
    params: list[dict[str, Any]] = [
        {"name": "subscription", "valueReference": {"reference": f"{BASE}/Subscription/{subscription}"}},
        {"name": "topic", "valueCanonical": TOPIC},
        {"name": "status", "valueCode": status},
        {"name": "type", "valueCode": kind},
        {"name": "events-since-subscription-start", "valueString": str(events_since)},
    ]
    for number, focus in events:
        params.append(
            {
                "name": "notification-event",
                "part": [
                    {"name": "event-number", "valueString": str(number)},
                    {"name": "timestamp", "valueInstant": "2026-11-23T10:00:00Z"},
                    {"name": "focus", "valueReference": {"reference": f"{BASE}/{focus}"}},
                ],
            }
        )
    entries: list[dict[str, Any]] = [
        {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Parameters", "parameter": params}}
    ]
    for res in resources:
        entries.append(
            {
                "fullUrl": f"{BASE}/{res['resourceType']}/{res['id']}",
                "resource": res,
                "request": {"method": "PUT", "url": f"{res['resourceType']}/{res['id']}"},
            }
        )
    return {"resourceType": "Bundle", "type": "history", "timestamp": "2026-11-23T10:00:00Z", "entry": entries}
