"""Answering a CDS Hooks call: the caller's hospital only, the context checked against the prefetch.

The source is the one the JWT's issuer names (auth.py): a case of another hospital is never looked at,
whatever ids the request carries. The EHR is never read back: the prefetched Patient and Encounter
(when sent) must agree with the context, and without them our stored encounter snapshot says whose
admission it is. Each call is written to the access log as ``cds:<issuer>`` with the patient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from discharge_bridge.access.service import record_view
from discharge_bridge.cases.handoffs.models import Handoff, HandoffStatus
from discharge_bridge.cases.handoffs.service import missing_documents
from discharge_bridge.cases.models import Barrier, Case, CaseStatus
from discharge_bridge.cases.tasks.models import Task, TaskStatus
from discharge_bridge.ehr.cds.auth import CdsCaller
from discharge_bridge.ehr.cds.cards import CaseCardFacts, DischargeGaps, NextTask, discharge_card, patient_view_card
from discharge_bridge.ehr.cds.discovery import ENCOUNTER_DISCHARGE, PATIENT_VIEW, SERVICES
from discharge_bridge.ingest.models import EncounterSnapshot
from discharge_bridge.risk.models import RiskAssessment
from discharge_bridge.sources.models import Source
from discharge_bridge.users.models import User

FINAL_TASKS = frozenset({TaskStatus.completed, TaskStatus.cancelled, TaskStatus.failed})
ENDED_HANDOFFS = frozenset({HandoffStatus.cancelled, HandoffStatus.declined})
ID_MAX = 64


class CdsServiceNotFound(Exception):
    """No service of ours has this id (404)."""


class CdsBadRequest(Exception):
    """The request does not fit the hook (400); the message says what."""


@dataclass(frozen=True)
class HookContext:
    patient_id: str
    encounter_id: str | None


def _id(context: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = context.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > ID_MAX:
        raise CdsBadRequest(f"context.{name} must be a FHIR id")
    return value.removeprefix("Patient/").removeprefix("Encounter/")


def read_context(service_id: str, body: dict[str, Any]) -> HookContext:
    """The ids of the context, checked against the service's hook and against the prefetch when sent."""
    service = SERVICES.get(service_id)
    if service is None:
        raise CdsServiceNotFound(service_id)
    if body.get("hook") != service["hook"]:
        raise CdsBadRequest(f"this service answers the {service['hook']} hook")
    context = body.get("context")
    if not isinstance(context, dict):
        raise CdsBadRequest("context must be an object")
    patient_id = _id(context, "patientId", required=True)
    encounter_id = _id(context, "encounterId", required=service_id == ENCOUNTER_DISCHARGE)
    assert patient_id is not None
    prefetch = body.get("prefetch") or {}
    if not isinstance(prefetch, dict):
        raise CdsBadRequest("prefetch must be an object")
    patient = prefetch.get("patient")
    if patient is not None and (
        not isinstance(patient, dict) or patient.get("resourceType") != "Patient" or patient.get("id") != patient_id
    ):
        raise CdsBadRequest("prefetch.patient is not the Patient of context.patientId")
    encounter = prefetch.get("encounter")
    if encounter is not None:
        if (
            not isinstance(encounter, dict)
            or encounter.get("resourceType") != "Encounter"
            or encounter_id is None
            or encounter.get("id") != encounter_id
        ):
            raise CdsBadRequest("prefetch.encounter is not the Encounter of context.encounterId")
        subject = encounter.get("subject")
        subject = subject.get("reference") if isinstance(subject, dict) else None
        if subject is not None and str(subject).rsplit("/", 1)[-1] != patient_id:
            raise CdsBadRequest("prefetch.encounter is another patient's")
    return HookContext(patient_id, encounter_id)


def _stored_patient_of(session: Session, source_id: int, encounter_id: str) -> str | None:
    row = session.exec(
        select(EncounterSnapshot.patient_fhir_id).where(
            EncounterSnapshot.source_id == source_id, EncounterSnapshot.fhir_id == encounter_id
        )
    ).first()
    return row


def open_case(session: Session, source_id: int, ctx: HookContext, *, exact_encounter: bool) -> Case | None:
    """The open case of this patient in this source: that admission's when the context names one."""
    query = select(Case).where(
        Case.source_id == source_id, Case.patient_fhir_id == ctx.patient_id, Case.status == CaseStatus.open
    )
    cases = list(session.exec(query.order_by(col(Case.opened_at).desc(), col(Case.id).desc())))
    if ctx.encounter_id is not None:
        stored = _stored_patient_of(session, source_id, ctx.encounter_id)
        if stored is not None and stored != ctx.patient_id:
            return None  # the EHR's context and our snapshot disagree: say nothing rather than the wrong thing
        same = [c for c in cases if c.encounter_fhir_id == ctx.encounter_id]
        if same or exact_encounter:
            return same[0] if same else None
    return cases[0] if cases else None


def _reasons(session: Session, case: Case) -> list[str]:
    risk = session.exec(
        select(RiskAssessment)
        .where(RiskAssessment.source_id == case.source_id, RiskAssessment.encounter_fhir_id == case.encounter_fhir_id)
        .order_by(col(RiskAssessment.assessed_at).desc(), col(RiskAssessment.id).desc())
    ).first()
    if risk is None or not risk.flagged:
        return []
    return [str(r.get("text") or r.get("concept")) for r in risk.reasons if r.get("text") or r.get("concept")]


def _display_name(session: Session, username: str | None) -> str | None:
    if not username:
        return None
    user = session.exec(select(User).where(User.username == username)).first()
    return user.display_name if user is not None else username


def _next_task(session: Session, case_id: int) -> NextTask | None:
    tasks = [t for t in session.exec(select(Task).where(Task.case_id == case_id)) if t.status not in FINAL_TASKS]
    if not tasks:
        return None
    tasks.sort(key=lambda t: (t.due_at is None, t.due_at or t.created_at, t.id or 0))
    return NextTask(tasks[0].description, tasks[0].due_at)


def case_facts(session: Session, source: Source, case: Case, base_url: str) -> CaseCardFacts:
    assert case.id is not None
    smart = dict(source.smart_launch or {})
    return CaseCardFacts(
        case_url=f"{base_url}/cases/{case.id}",
        base_url=base_url + "/",
        priority=str(case.priority) if case.priority else None,
        coordinator=_display_name(session, case.coordinator),
        reasons=_reasons(session, case),
        next_task=_next_task(session, case.id),
        smart_launch_url=f"{base_url}/launch" if smart.get("client_id") else None,
    )


def discharge_gaps(session: Session, case: Case) -> DischargeGaps:
    """The current handoff (the latest not cancelled or declined), open barriers, documents not ticked."""
    handoffs = [
        h
        for h in session.exec(select(Handoff).where(Handoff.case_id == case.id).order_by(col(Handoff.id)))
        if h.status not in ENDED_HANDOFFS
    ]
    barriers = session.exec(
        select(Barrier).where(Barrier.case_id == case.id, col(Barrier.ended_at).is_(None)).order_by(col(Barrier.id))
    )
    open_barriers = [str(b.code).replace("_", " ") for b in barriers]
    if not handoffs:
        return DischargeGaps(False, "no handoff arranged", open_barriers)
    current = handoffs[-1]
    where = str(current.destination_type).replace("_", " ")
    done = current.status == HandoffStatus.completed
    missing = [] if done else [str(d.get("label") or d.get("code")) for d in missing_documents(current)]
    return DischargeGaps(done, f"{where}: {current.status}", open_barriers, missing)


def answer(
    session: Session, caller: CdsCaller, service_id: str, body: dict[str, Any], *, base_url: str
) -> dict[str, Any]:
    """``{"cards": [...]}`` for one call (flushes its access-log entry); CdsBadRequest / CdsServiceNotFound."""
    ctx = read_context(service_id, body)
    source = session.get(Source, caller.source_id)
    assert source is not None
    base_url = base_url.rstrip("/")
    cards: list[dict[str, Any]] = []
    case = open_case(session, caller.source_id, ctx, exact_encounter=service_id == ENCOUNTER_DISCHARGE)
    if case is not None:
        facts = case_facts(session, source, case, base_url)
        if service_id == PATIENT_VIEW:
            cards.append(patient_view_card(facts))
        else:
            card = discharge_card(facts, discharge_gaps(session, case))
            if card is not None:
                cards.append(card)
    route = f"POST /cds-services/{service_id}"
    record_view(session, user=caller.user, route=route, patients=[(caller.source_id, ctx.patient_id)])
    return {"cards": cards}
