"""The append-only event log of a case, and the timeline read from it.

Every mutating service call writes exactly one event in the same transaction as the change, so
the log and the state cannot disagree. ``data`` holds what changed as ``{field: [old, new]}``
plus the ids needed to follow the change (task_id, handoff_id, ...).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum, StrEnum
from typing import Any

from sqlmodel import Session, col, select

from discharge_bridge.cases.models import Case, CaseEvent
from discharge_bridge.db import utcnow


class EventKind(StrEnum):
    opened = "opened"
    priority_changed = "priority_changed"
    assigned = "assigned"
    status_changed = "status_changed"
    dates_changed = "dates_changed"
    discharged = "discharged"
    assessment_updated = "assessment_updated"
    flag_corrected = "flag_corrected"
    task_created = "task_created"
    task_updated = "task_updated"
    task_overdue = "task_overdue"  # the scheduler's escalation: once per task, raised to urgent
    handoff_created = "handoff_created"
    handoff_updated = "handoff_updated"
    barrier_added = "barrier_added"
    barrier_updated = "barrier_updated"
    leg_changed = "leg_changed"  # the stay moved on to another Encounter (a ward transfer): the case follows
    flag_withdrawn = "flag_withdrawn"  # every reason behind the flags was corrected in the EHR
    flag_restored = "flag_restored"
    kept = "kept"  # a coordinator kept a case whose flag was withdrawn, with a reason
    merged = "merged"  # the patient's record was merged into another (Patient.link): the case follows
    same_person = "same_person"  # a coordinator confirmed a possible duplicate record (Patient.link seealso)
    contact_added = "contact_added"  # a relative or other person added by hand (cases/contacts)
    contact_updated = "contact_updated"
    contact_logged = "contact_logged"  # a call, visit or message to a contact, with its outcome
    no_relatives_found = "no_relatives_found"  # the search ended with no one: the plan's next step follows
    service_recorded = "service_recorded"  # a service delivered, from the catalogue (cases/delivered)
    service_struck = "service_struck"  # a service delivered struck out as recorded by mistake
    consent_recorded = "consent_recorded"  # consent to share with organisations (cases/consent)
    consent_revoked = "consent_revoked"
    referral_created = "referral_created"  # a referral to a directory service (cases/referrals)
    referral_updated = "referral_updated"
    screening_started = "screening_started"  # a BRASS or ISAR screening, pre-filled (cases/screening)
    screening_updated = "screening_updated"  # answers changed; on a completed one: amended, re-scored
    screening_completed = "screening_completed"


def plain(value: Any) -> Any:
    """A JSON-safe copy: datetimes as ISO text, enums as their values."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def record_event(
    session: Session,
    case: Case,
    *,
    actor: str,
    kind: EventKind,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> CaseEvent:
    """Append one event to the case's log (flushed, not committed)."""
    assert case.id is not None
    event = CaseEvent(case_id=case.id, at=at or utcnow(), actor=actor, kind=kind, data=plain(data or {}))
    session.add(event)
    session.flush()
    return event


def changes(obj: object, values: dict[str, Any]) -> dict[str, list[Any]]:
    """Apply ``values`` to ``obj``; return ``{field: [old, new]}`` for those that really changed."""
    changed: dict[str, list[Any]] = {}
    for field, new in values.items():
        old = getattr(obj, field)
        if old != new:
            changed[field] = [old, new]
            setattr(obj, field, new)
    return changed


def timeline(session: Session, case_id: int, *, limit: int = 500, offset: int = 0) -> list[CaseEvent]:
    """The case's events, oldest first (ids grow with insertion, so they break ties of ``at``)."""
    query = (
        select(CaseEvent)
        .where(CaseEvent.case_id == case_id)
        .order_by(col(CaseEvent.id).asc())
        .limit(limit)
        .offset(offset)
    )
    return list(session.exec(query))
