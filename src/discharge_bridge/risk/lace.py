"""LACE index (van Walraven 2010): 30-day readmission or death risk, shown beside the flags.

It informs; it never gates a flag. Components are None when their input is missing, and the
score is then `partial`: the total is the sum of what is known (a floor of the real score).

Length of stay for a current stay: the expected end when the Encounter carries one (R5's
plannedEndDate travels in R4 as a cross-version extension), else the days so far at `now`. LACE
is a discharge-time score, so for a current stay L is provisional: it can only grow, and callers
recompute it (daily re-scoring) rather than store it once. Days are calendar days in the
admission's time zone (`<1` = same-day).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from discharge_bridge.fhir.fields import (
    aware,
    code_values,
    codes,
    encounter_class_codes,
    encounter_status,
    extensions,
    loose_reference_id,
    parse_datetime,
    period,
    text,
)
from discharge_bridge.risk.charlson import charlson_index
from discharge_bridge.risk.codes import is_icd10
from discharge_bridge.risk.evidence import condition_counts
from discharge_bridge.risk.record import PatientRecord

PLANNED_END_URL = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Encounter.plannedEndDate"
EMERGENCY_CLASSES = {"EMER"}
EMERGENCY_ADMIT_SOURCES = {"emd"}
EMERGENCY_PRIORITIES = {"em", "ur"}  # v3 ActPriority: emergency, urgent
ED_LOOKBACK = timedelta(days=182)  # six months
ED_TO_WARD = timedelta(hours=24)  # an ED visit ending this close before admission is its front door
HIGH = 10


@dataclass(frozen=True)
class LaceScore:
    total: int | None
    components: dict[str, int | None]
    partial: bool
    high: bool


def length_points(days: int) -> int:
    if days < 1:
        return 0
    if days <= 3:
        return days
    if days <= 6:
        return 4
    if days <= 13:
        return 5
    return 7


def charlson_points(index: int) -> int:
    return index if index <= 3 else 5


def _planned_end(encounter: dict[str, Any]) -> datetime | None:
    for ext in extensions(encounter):
        if text(ext.get("url")) == PLANNED_END_URL:
            return parse_datetime(ext.get("valueDateTime") or ext.get("valueDate"))
    return None


def _length(record: PatientRecord, start: datetime | None, end: datetime | None, now: datetime) -> int | None:
    if start is None:
        return None
    if end is None:
        planned = _planned_end(record.encounter)
        end = planned if planned is not None and planned >= start else aware(now)
    days = (end.astimezone(start.tzinfo).date() - start.date()).days
    return length_points(max(days, 0))


def _is_emergency_visit(encounter: dict[str, Any]) -> bool:
    if encounter_status(encounter) in {"cancelled", "entered-in-error", "planned"}:
        return False
    return any(c.upper() in EMERGENCY_CLASSES for c in encounter_class_codes(encounter))


# (position in other_encounters, the encounter, its start, its end)
_Visit = tuple[int, dict[str, Any], datetime | None, datetime | None]


def _emergency_visits(record: PatientRecord) -> list[_Visit]:
    """The other encounters that are ED visits, with their periods: read once for A and E."""
    return [
        (index, other, *period(other))
        for index, other in enumerate(record.other_encounters)
        if isinstance(other, dict) and _is_emergency_visit(other)
    ]


def _front_door(record: PatientRecord, start: datetime | None, visits: list[_Visit]) -> set[int]:
    """ED visits that led to this admission (linked by partOf, or ending within a day before it)."""
    this_id = text(record.encounter.get("id"))
    parent_id = loose_reference_id(record.encounter.get("partOf"), "Encounter")
    out: set[int] = set()
    for index, other, o_start, o_end in visits:
        linked = (parent_id and text(other.get("id")) == parent_id) or (
            this_id and loose_reference_id(other.get("partOf"), "Encounter") == this_id
        )
        # Without an end, the visit's start must itself be within the day before admission.
        last_seen = o_end or o_start
        adjacent = (
            start is not None
            and o_start is not None
            and last_seen is not None
            and (o_start <= start and start - ED_TO_WARD <= last_seen)
        )
        if linked or adjacent:
            out.add(index)
    return out


def _acute(record: PatientRecord, front_door: set[int]) -> int | None:
    encounter = record.encounter
    classes = {c.upper() for c in encounter_class_codes(encounter)}
    hospitalization = encounter.get("hospitalization")
    admit_source = code_values(hospitalization.get("admitSource")) if isinstance(hospitalization, dict) else set()
    priority = code_values(encounter.get("priority"))
    if classes & EMERGENCY_CLASSES or admit_source & EMERGENCY_ADMIT_SOURCES:
        return 3
    if priority & EMERGENCY_PRIORITIES or front_door:
        return 3
    if not classes and not admit_source and not priority:
        return None
    return 0


def _comorbidity(record: PatientRecord) -> int | None:
    icd = [
        c.code
        for condition in record.conditions
        if isinstance(condition, dict) and condition_counts(condition)
        for c in codes(condition.get("code"))
        if is_icd10(c.system)
    ]
    # No ICD-10 coded condition at all: "none" and "not sent / SNOMED only" look the same.
    return charlson_points(charlson_index(icd)) if icd else None


def _ed_visits(start: datetime | None, visits: list[_Visit], front_door: set[int]) -> int | None:
    if start is None:
        return None
    count = 0
    for index, _, o_start, _ in visits:
        if index not in front_door and o_start is not None and start - ED_LOOKBACK <= o_start < start:
            count += 1
    return min(count, 4)


def compute_lace(record: PatientRecord, now: datetime) -> LaceScore:
    """LACE for the record's admission as of `now` (naive `now` is read as UTC)."""
    start, end = period(record.encounter)
    visits = _emergency_visits(record)
    front_door = _front_door(record, start, visits)
    components: dict[str, int | None] = {
        "L": _length(record, start, end, now),
        "A": _acute(record, front_door),
        "C": _comorbidity(record),
        "E": _ed_visits(start, visits, front_door),
    }
    known = [v for v in components.values() if v is not None]
    total = sum(known) if known else None
    return LaceScore(
        total=total,
        components=components,
        partial=len(known) < len(components),
        high=total is not None and total >= HIGH,
    )
