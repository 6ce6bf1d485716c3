"""Which Conditions and Observations count as evidence, and which encounters can be flagged."""

from __future__ import annotations

from typing import Any

from discharge_bridge.fhir.fields import code_values, encounter_class_codes, encounter_status, loose_reference_id
from discharge_bridge.risk.mapping import Mapping

ACTIVE_CLINICAL = frozenset({"active", "recurrence", "relapse"})
NOT_TRUE = frozenset({"refuted", "entered-in-error"})
USABLE_OBSERVATION = frozenset({"final", "amended", "corrected", "preliminary"})


def condition_counts(condition: dict[str, Any]) -> bool:
    """Clinically active (or no clinicalStatus at all) and not refuted or entered in error."""
    if not code_values(condition.get("verificationStatus")).isdisjoint(NOT_TRUE):
        return False
    clinical = code_values(condition.get("clinicalStatus"))
    return not clinical or not clinical.isdisjoint(ACTIVE_CLINICAL)


def observation_counts(observation: dict[str, Any]) -> bool:
    status = observation.get("status")
    return isinstance(status, str) and status.strip().lower() in USABLE_OBSERVATION


def related_person_counts(person: dict[str, Any], patient_id: str) -> bool:
    """Active (absent = active) and, when it names a patient, naming this one."""
    if person.get("active") is False:
        return False
    ref = loose_reference_id(person.get("patient"), "Patient")
    return not ref or not patient_id or ref == patient_id


def is_inpatient(encounter: dict[str, Any], mapping: Mapping) -> bool:
    wanted = mapping.inpatient_classes
    return any(c.upper() in wanted for c in encounter_class_codes(encounter))


def is_flaggable(encounter: dict[str, Any], mapping: Mapping) -> bool:
    """An inpatient admission that is current: the only kind that may open a new flag.

    Outpatient, emergency-only, planned, cancelled, entered-in-error and finished encounters
    never do. Classes and statuses come from the mapping's `encounters:` section.
    """
    if not isinstance(encounter, dict):
        return False
    return is_inpatient(encounter, mapping) and encounter_status(encounter) in mapping.current_statuses
