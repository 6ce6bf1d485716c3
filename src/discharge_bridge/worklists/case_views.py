"""Building the API's views of a case from its rows (reads only)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from discharge_bridge.cases.barriers import delayed_days
from discharge_bridge.cases.handoffs.models import Handoff
from discharge_bridge.cases.models import Assessment, Barrier, Case
from discharge_bridge.cases.readiness import bed_days_lost
from discharge_bridge.cases.repository import count_by_status, get_encounter, latest_risk
from discharge_bridge.cases.schemas import (
    AssessmentOut,
    BarrierOut,
    CaseDetail,
    CaseSummary,
    CountsOut,
    DateOut,
    DischargeOut,
    FlagsOut,
)
from discharge_bridge.cases.tasks.models import TASK_TRANSITIONS, Task
from discharge_bridge.ingest.aliases import possible_duplicates
from discharge_bridge.sources.models import Source


def source_names(session: Session) -> dict[int, str]:
    return {sid: name for sid, name in session.exec(select(Source.id, Source.name)) if sid is not None}


def summary(case: Case, source_name: str) -> CaseSummary:
    assert case.id is not None
    return CaseSummary(
        id=case.id,
        source=source_name,
        encounter=case.encounter_fhir_id,
        patient=case.patient_fhir_id,
        status=case.status,
        outcome=case.outcome,
        priority=case.priority,
        coordinator=case.coordinator,
        opened_at=case.opened_at,
        closed_at=case.closed_at,
        expected_discharge_at=case.expected_discharge_at,
        actual_discharge_at=case.actual_discharge_at,
        flag_withdrawn_at=case.flag_withdrawn_at,
        version=case.version,
    )


def detail(session: Session, case: Case, now: datetime) -> CaseDetail:
    """Everything a coordinator sees at the top of a case, in a handful of queries."""
    assert case.id is not None
    source = session.get(Source, case.source_id)
    assert source is not None
    enc = get_encounter(session, case.source_id, case.encounter_fhir_id)
    risk = latest_risk(session, case)
    overdue = session.exec(
        select(func.count())
        .select_from(Task)
        .where(Task.case_id == case.id, col(Task.status).in_(TASK_TRANSITIONS.active), col(Task.due_at) < now)
    ).one()
    open_barriers = session.exec(
        select(func.count()).select_from(Barrier).where(Barrier.case_id == case.id, col(Barrier.ended_at).is_(None))
    ).one()
    return CaseDetail(
        **summary(case, source.name).model_dump(),
        opened_by=case.opened_by,
        opened_by_hand=case.opened_by_hand,
        hospital=source.hospital,
        encounter_status=enc.status if enc else None,
        admitted_at=enc.period_start if enc else None,
        ward=enc.ward if enc else None,
        bed=enc.bed if enc else None,
        flags=FlagsOut.model_validate(risk, from_attributes=True) if risk else None,
        expected_discharge=DateOut(
            at=case.expected_discharge_at, source=case.expected_discharge_source, set_by=case.expected_discharge_set_by
        ),
        medically_ready=DateOut(
            at=case.medically_ready_at, source=case.medically_ready_source, set_by=case.medically_ready_set_by
        ),
        bed_days_lost=bed_days_lost(case, now),
        discharge=DischargeOut(
            at=case.actual_discharge_at,
            disposition=case.discharge_disposition,
            destination=case.discharge_destination,
        ),
        counts=CountsOut(
            tasks=count_by_status(session, Task, case.id),
            tasks_overdue=overdue,
            handoffs=count_by_status(session, Handoff, case.id),
            open_barriers=open_barriers,
        ),
        possibly_same_person=possible_duplicates(session, case.source_id, case.patient_fhir_id),
    )


def assessment_view(case_id: int, assessment: Assessment | None) -> AssessmentOut:
    if assessment is None:  # not assessed yet: an empty form at version 0
        return AssessmentOut.model_validate(
            {
                "case_id": case_id,
                "domains": {},
                "daily_living": {},
                "living_situation": {},
                "flag_corrections": [],
                "updated_at": None,
                "updated_by": None,
                "version": 0,
            }
        )
    return AssessmentOut.model_validate(
        {
            "case_id": case_id,
            "domains": assessment.domains,
            "daily_living": assessment.daily_living,
            "living_situation": assessment.living_situation,
            "flag_corrections": assessment.flag_corrections,
            "updated_at": assessment.updated_at,
            "updated_by": assessment.updated_by,
            "version": assessment.version,
        }
    )


def barrier_view(barrier: Barrier, now: datetime) -> BarrierOut:
    assert barrier.id is not None
    return BarrierOut(
        id=barrier.id,
        case_id=barrier.case_id,
        code=barrier.code,
        owner=barrier.owner,
        note=barrier.note,
        started_at=barrier.started_at,
        ended_at=barrier.ended_at,
        open=barrier.ended_at is None,
        delayed_days=delayed_days(barrier, now),
        created_by=barrier.created_by,
        version=barrier.version,
    )
