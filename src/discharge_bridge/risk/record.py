"""What the risk core reads about one admission: plain FHIR R4 JSON dicts, grouped."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from discharge_bridge.fhir.fields import as_list, period, text


@dataclass
class PatientRecord:
    """One admission and the patient's data around it.

    `encounter` is the admission being assessed; `other_encounters` are the same patient's other
    encounters of any class and status (prior stays for readmission, ED visits for LACE).
    """

    patient: dict[str, Any]
    encounter: dict[str, Any]
    conditions: list[dict[str, Any]] = field(default_factory=list)
    observations: list[dict[str, Any]] = field(default_factory=list)
    related_persons: list[dict[str, Any]] = field(default_factory=list)
    other_encounters: list[dict[str, Any]] = field(default_factory=list)
    # Procedure resources, when a feed sends them (HOSPITAL's "P"; empty = not known, not "none").
    procedures: list[dict[str, Any]] = field(default_factory=list)
    # Completed bedside screenings of this admission (BRASS, ISAR), passed in by the service:
    # {"tool", "total", "band", "evidence": "QuestionnaireResponse/<id>", "completed_at"}.
    screenings: list[dict[str, Any]] = field(default_factory=list)


def _resources(bundle: dict[str, Any] | list[Any]) -> list[dict[str, Any]]:
    entries = bundle if isinstance(bundle, list) else as_list(bundle.get("entry"))
    out = []
    for entry in entries:
        resource = entry.get("resource", entry) if isinstance(entry, dict) else None
        if isinstance(resource, dict) and text(resource.get("resourceType")):
            out.append(resource)
    return out


def record_from_bundle(bundle: dict[str, Any] | list[Any], encounter_id: str | None = None) -> PatientRecord:
    """Group a Bundle (transaction, batch, searchset) or a list of resources into a PatientRecord.

    The first Patient is the patient. The assessed encounter is `encounter_id`, else the one with
    the latest `period.start`; every other Encounter goes to `other_encounters`.
    Raises ValueError when there is no Patient or no Encounter.
    """
    resources = _resources(bundle)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in resources:
        by_type.setdefault(resource["resourceType"], []).append(resource)
    patients = by_type.get("Patient", [])
    encounters = by_type.get("Encounter", [])
    if not patients or not encounters:
        raise ValueError("the bundle needs a Patient and at least one Encounter")
    if encounter_id is not None:
        chosen = next((e for e in encounters if text(e.get("id")) == encounter_id), None)
        if chosen is None:
            raise ValueError(f"no Encounter/{encounter_id} in the bundle")
    else:
        floor = datetime.min.replace(tzinfo=UTC)
        chosen = max(encounters, key=lambda e: period(e)[0] or floor)
    return PatientRecord(
        patient=patients[0],
        encounter=chosen,
        conditions=by_type.get("Condition", []),
        observations=by_type.get("Observation", []),
        related_persons=by_type.get("RelatedPerson", []),
        other_encounters=[e for e in encounters if e is not chosen],
        procedures=by_type.get("Procedure", []),
    )
