"""Where a launch lands: the case of the admission in the launch context, else what we hold of the patient."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from discharge_bridge.cases.models import Case, CaseStatus
from discharge_bridge.ingest.models import EncounterSnapshot


@dataclass(frozen=True)
class Landing:
    case_id: int | None  # the case page to open
    admissions: list[EncounterSnapshot]  # no case: the patient's stored admissions here (newest first)


def landing(session: Session, source_id: int, patient: str, encounter: str | None) -> Landing:
    """The launch's admission's case (open or closed); without an encounter in the context, the
    patient's newest open case. No case: the patient's stored admissions, to offer opening one."""
    if encounter:
        case = session.exec(
            select(Case).where(
                Case.source_id == source_id, Case.encounter_fhir_id == encounter, Case.patient_fhir_id == patient
            )
        ).first()
    else:
        case = session.exec(
            select(Case)
            .where(Case.source_id == source_id, Case.patient_fhir_id == patient, Case.status == CaseStatus.open)
            .order_by(col(Case.opened_at).desc(), col(Case.id).desc())
        ).first()
    if case is not None:
        return Landing(case.id, [])
    query = select(EncounterSnapshot).where(
        EncounterSnapshot.source_id == source_id, EncounterSnapshot.patient_fhir_id == patient
    )
    if encounter:
        query = query.where(EncounterSnapshot.fhir_id == encounter)
    admissions = list(session.exec(query.order_by(col(EncounterSnapshot.period_start).desc()).limit(20)))
    return Landing(None, admissions)
