"""The few facts about a person that a receiver or a psychologist is shown: name, age, sex, ward.

Read from the Patient and Encounter snapshots in one query for a whole list. Never the birth date,
identifiers or address: the age is enough to judge eligibility, and the rest is not theirs to see.
The phone is read only for callers that may show it (``with_phone``). Showing any of this is a view
of identity: callers record it with ``access.record_view``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import and_, or_
from sqlmodel import Session, col, select

from discharge_bridge.cases.models import Case
from discharge_bridge.ingest.models import EncounterSnapshot, PatientSnapshot
from discharge_bridge.risk.ages import age_at

_COLUMNS: tuple[Any, ...] = (
    EncounterSnapshot.source_id,
    EncounterSnapshot.fhir_id,
    EncounterSnapshot.ward,
    PatientSnapshot.name,
    PatientSnapshot.birth_date,
    PatientSnapshot.gender,
    PatientSnapshot.phone,
)


@dataclass(frozen=True)
class PersonBrief:
    name: str | None
    age: int | None
    sex: str | None
    ward: str | None
    phone: str | None = None


def briefs(session: Session, cases: list[Case], today: date, *, with_phone: bool = False) -> dict[int, PersonBrief]:
    """Case id -> the person's brief; a case whose admission is not stored gets an empty brief."""
    found: dict[int, PersonBrief] = {}
    if not cases:
        return found
    rows = session.execute(
        select(*_COLUMNS)
        .select_from(EncounterSnapshot)
        .join(
            PatientSnapshot,
            (col(PatientSnapshot.source_id) == col(EncounterSnapshot.source_id))
            & (col(PatientSnapshot.fhir_id) == col(EncounterSnapshot.patient_fhir_id)),
            isouter=True,
        )
        .where(
            or_(
                *(
                    and_(col(EncounterSnapshot.source_id) == c.source_id, col(EncounterSnapshot.fhir_id) == enc)
                    for c, enc in ((c, c.encounter_fhir_id) for c in cases)
                )
            )
        )
    ).all()
    by_key = {(r.source_id, r.fhir_id): r for r in rows}
    for case in cases:
        assert case.id is not None
        row = by_key.get((case.source_id, case.encounter_fhir_id))
        if row is None:
            found[case.id] = PersonBrief(None, None, None, None)
            continue
        found[case.id] = PersonBrief(
            name=row.name,
            age=age_at(row.birth_date, today) if row.birth_date else None,
            sex=row.gender,
            ward=row.ward,
            phone=row.phone if with_phone else None,
        )
    return found
