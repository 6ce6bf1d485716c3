"""Opening, prioritising, assigning and closing cases. Services flush; the caller commits.

Every function takes ``actor`` (who makes the change: a person's name, "system" or "ehr") and
writes one CaseEvent with what changed, in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, or_
from sqlmodel import Session, col, select

from discharge_bridge.cases.batch import first_tasks
from discharge_bridge.cases.errors import InvalidInput, NotFound, check_version
from discharge_bridge.cases.events import EventKind, changes, record_event
from discharge_bridge.cases.handoffs.models import HANDOFF_TRANSITIONS, Handoff, HandoffStatus
from discharge_bridge.cases.models import CASE_TRANSITIONS, PRIORITY_RANK, Case, CaseOutcome, CaseStatus, Priority
from discharge_bridge.cases.repository import get_case_for_encounter, get_encounter, latest_risk_of
from discharge_bridge.cases.tasks.models import TASK_TRANSITIONS, Task, TaskStatus
from discharge_bridge.cases.tasks.service import create_task
from discharge_bridge.db import utcnow
from discharge_bridge.ingest import aliases
from discharge_bridge.ingest.changes import enqueue_patients
from discharge_bridge.ingest.store import insert_for
from discharge_bridge.sources.service import SourceNotFound, get_source
from discharge_bridge.users.principal import Principal
from discharge_bridge.users.roles import Role

_CASE_TABLE: Table = Case.__table__  # type: ignore[attr-defined]


def open_case(
    session: Session,
    *,
    source_id: int,
    encounter_fhir_id: str,
    patient_fhir_id: str,
    priority: Priority | str | None,
    reasons_concepts: list[str],
    actor: str = "system",
    by_hand: bool = False,
    now: datetime | None = None,
) -> tuple[Case, bool]:
    """The admission's case, opened now if it has none; ``created`` says which.

    Idempotent on (source, encounter) through INSERT ... ON CONFLICT DO NOTHING: of two callers
    racing on PostgreSQL, the second waits for the first's row and then finds it, so exactly one
    caller creates the case and its first tasks. A new case gets a first-visit task, and an urgent
    find-guardian task when ``no_guardian`` is among the flags.
    """
    now = now or utcnow()
    priority = Priority(priority) if priority else None
    draft = Case(
        source_id=source_id,
        encounter_fhir_id=encounter_fhir_id,
        patient_fhir_id=patient_fhir_id,
        priority=priority,
        priority_rank=PRIORITY_RANK[priority],
        opened_at=now,
        opened_by=actor,
        opened_by_hand=by_hand,
        updated_at=now,
        version=1,
    )
    stmt = (
        insert_for(session, _CASE_TABLE)
        .values(**draft.model_dump(exclude={"id"}))
        .on_conflict_do_nothing(index_elements=["source_id", "encounter_fhir_id"])
        .returning(_CASE_TABLE.c.id)
    )
    new_id = session.execute(stmt).scalar_one_or_none()
    if new_id is None:
        existing = get_case_for_encounter(session, source_id, encounter_fhir_id)
        assert existing is not None, "ON CONFLICT without a row: the unique key is broken"
        return existing, False
    case = session.get(Case, new_id)
    assert case is not None
    record_event(
        session,
        case,
        actor=actor,
        kind=EventKind.opened,
        at=now,
        data={"priority": priority, "flags": sorted(reasons_concepts), "by_hand": by_hand},
    )
    for template in first_tasks(reasons_concepts):
        create_task(
            session,
            case,
            actor=actor,
            kind=template.kind,
            domain=template.domain,
            priority=template.priority,
            description=template.description,
            due_at=now + template.due,
            now=now,
        )
    return case, True


def update_priority(session: Session, case: Case, priority: Priority | str | None, *, actor: str = "system") -> bool:
    """Set the priority a re-score gave; an event records old -> new. False when unchanged."""
    new = Priority(priority) if priority else None
    changed = changes(case, {"priority": new, "priority_rank": PRIORITY_RANK[new]})
    if not changed:
        return False
    case.updated_at = utcnow()
    session.add(case)
    record_event(session, case, actor=actor, kind=EventKind.priority_changed, data={"priority": changed["priority"]})
    return True


def open_case_by_hand(
    session: Session,
    *,
    source_name: str,
    encounter_fhir_id: str,
    actor: str,
    principal: Principal,
) -> tuple[Case, bool]:
    """Open a case for any stored admission of a source ``principal`` sees (with its flags' priority,
    if flagged); a coordinator who opens a case takes it on.

    Raises NotFound for a source outside the principal's scope or an admission the store does not hold.
    """

    try:
        source = get_source(session, source_name, source_ids=principal.scope)
    except SourceNotFound:
        raise NotFound("source", repr(source_name)) from None
    assert source.id is not None
    encounter = get_encounter(session, source.id, encounter_fhir_id)
    if encounter is None:
        raise NotFound("encounter", f"{encounter_fhir_id!r} of source {source_name!r}")
    risk = latest_risk_of(session, source.id, encounter.fhir_id)
    flagged = risk is not None and risk.flagged
    case, created = open_case(
        session,
        source_id=source.id,
        encounter_fhir_id=encounter.fhir_id,
        patient_fhir_id=encounter.patient_fhir_id,
        priority=risk.priority if risk and flagged else None,
        reasons_concepts=[str(r.get("concept")) for r in risk.reasons] if risk and flagged else [],
        actor=actor,
        by_hand=True,
    )
    if created and principal.role == Role.coordinator:
        assign(session, case, principal.username, actor=actor)
    return case, created


def keep_case(session: Session, case: Case, *, actor: str, reason: str, expected_version: int | None = None) -> None:
    """A coordinator keeps a case whose flag was withdrawn, saying why (it stays open, unmarked)."""
    check_version("case", case.version, expected_version)
    if case.flag_withdrawn_at is None:
        raise InvalidInput(("body", "keep_reason"), "only a case whose flag was withdrawn is kept with a reason")
    if not reason.strip():
        raise InvalidInput(("body", "keep_reason"), "say why the case is kept")
    case.flag_withdrawn_at = None
    case.updated_at = utcnow()
    session.add(case)
    record_event(session, case, actor=actor, kind=EventKind.kept, data={"reason": reason.strip()})


def assign(
    session: Session, case: Case, coordinator: str | None, *, actor: str, expected_version: int | None = None
) -> bool:
    """Make ``coordinator`` responsible; active tasks without an owner, or owned by the previous
    coordinator, move with the case."""
    check_version("case", case.version, expected_version)
    previous = case.coordinator
    if previous == coordinator:
        return False
    case.coordinator = coordinator
    case.updated_at = utcnow()
    session.add(case)
    moved: list[int] = []
    if coordinator is not None:
        query = select(Task).where(
            Task.case_id == case.id,
            col(Task.status).in_(TASK_TRANSITIONS.active),
            or_(col(Task.owner).is_(None), col(Task.owner) == previous),
        )
        for task in session.exec(query).all():
            task.owner = coordinator
            task.updated_at = utcnow()
            session.add(task)
            moved.append(task.id or 0)
    record_event(
        session,
        case,
        actor=actor,
        kind=EventKind.assigned,
        data={"coordinator": [previous, coordinator], "tasks_reassigned": moved},
    )
    return True


def change_status(
    session: Session,
    case: Case,
    status: CaseStatus,
    *,
    actor: str,
    outcome: CaseOutcome | None = None,
    expected_version: int | None = None,
    reason: str | None = None,
) -> bool:
    """Close, cancel or reopen a case (see CASE_TRANSITIONS); ``reason`` goes on the timeline and on
    the tasks it cancels.

    Closing needs an outcome unless the patient was discharged (then "discharged"). Closing or
    cancelling ends the case's active tasks and handoffs as cancelled: nothing stays on anyone's
    list for a case no one is working on.
    """
    check_version("case", case.version, expected_version)
    current = CaseStatus(case.status)
    if status == current:
        return False
    CASE_TRANSITIONS.check("case", current, status)
    if status == CaseStatus.closed and outcome is None:
        if case.actual_discharge_at is None:
            raise InvalidInput(
                ("body", "outcome"), "outcome is required to close a case whose patient is not discharged"
            )
        outcome = CaseOutcome.discharged
    now = utcnow()
    data: dict[str, Any] = changes(
        case,
        {
            "status": status,
            "outcome": None if status == CaseStatus.open else outcome,
            "closed_at": None if status == CaseStatus.open else now,
        },
    )
    case.updated_at = now
    session.add(case)
    if status != CaseStatus.open:
        data.update(_cancel_open_work(session, case, now, reason))
    if reason:
        data["reason"] = reason
    record_event(session, case, actor=actor, kind=EventKind.status_changed, data=data)
    return True


def _cancel_open_work(session: Session, case: Case, now: datetime, reason: str | None) -> dict[str, list[int]]:
    tasks = session.exec(
        select(Task).where(Task.case_id == case.id, col(Task.status).in_(TASK_TRANSITIONS.active))
    ).all()
    for task in tasks:
        task.status, task.status_reason, task.status_changed_at, task.updated_at = (
            TaskStatus.cancelled,
            reason or f"case {case.status}",
            now,
            now,
        )
        session.add(task)
    handoffs = session.exec(
        select(Handoff).where(Handoff.case_id == case.id, col(Handoff.status).in_(HANDOFF_TRANSITIONS.active))
    ).all()
    for handoff in handoffs:
        handoff.status, handoff.cancelled_at, handoff.updated_at = HandoffStatus.cancelled, now, now
        session.add(handoff)
    return {"tasks_cancelled": [t.id or 0 for t in tasks], "handoffs_cancelled": [h.id or 0 for h in handoffs]}


def confirm_same_person(session: Session, case: Case, other_id: str, *, actor: str) -> None:
    """The coordinator confirms that another record the EHR named (``seealso``) is this case's person.

    The two records are one person from now on (the case's record survives); both are queued for
    assessment so their stays, facts and contacts are read together at the next drain.
    """
    if not aliases.confirm_same_person(session, case.source_id, case.patient_fhir_id, other_id, actor=actor):
        raise InvalidInput(("body", "same_person"), f"the EHR does not name {other_id!r} as possibly this person")
    enqueue_patients(session, case.source_id, [case.patient_fhir_id, other_id])
    case.updated_at = utcnow()
    session.add(case)
    record_event(
        session, case, actor=actor, kind=EventKind.same_person, data={"patient": [other_id, case.patient_fhir_id]}
    )
