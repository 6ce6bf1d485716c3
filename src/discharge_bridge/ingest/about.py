"""What a raw resource is about, read before it is normalised: its patient, an Encounter's class.

Push and backfill both decide from these whether a resource belongs to a followed stay.
"""

from __future__ import annotations

from typing import Any

from discharge_bridge.ingest.normalise import first_code, reference_id


def class_code(encounter: dict[str, Any]) -> str | None:
    """R4's one Coding, R5's list of CodeableConcepts, or a bare code string some EHRs send."""
    value = encounter.get("class")
    return (value or None) if isinstance(value, str) else first_code(value)


def owner_of(resource: dict[str, Any]) -> str | None:
    """The Patient a resource is about (itself, for a Patient)."""
    rtype = resource.get("resourceType")
    if rtype == "Patient":
        rid = resource.get("id")
        return rid if isinstance(rid, str) else None
    field = "patient" if rtype == "RelatedPerson" else "subject"
    return reference_id(resource.get(field), "Patient")
