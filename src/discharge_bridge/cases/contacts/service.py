"""A case's contacts (from the EHR and added by hand) and its contact log. Services flush; the
caller commits. Every change writes one case event in the same transaction, so the timeline shows
each contact added or edited and each call, visit or message with its outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from discharge_bridge.cases.contacts import plan
from discharge_bridge.cases.contacts.ehr import ehr_contacts
from discharge_bridge.cases.contacts.models import CaseContact, ContactKind, ContactLogEntry, ContactOutcome
from discharge_bridge.cases.contacts.relationships import HandRelationship, Relationship, of_code
from discharge_bridge.cases.errors import InvalidInput, NotFound, check_version, ensure_open, refuse_nulls
from discharge_bridge.cases.events import EventKind, changes, record_event
from discharge_bridge.cases.models import Case
from discharge_bridge.cases.tasks.models import Task
from discharge_bridge.db import utcnow

EDITABLE = frozenset({"name", "relationship", "phones", "address", "note"})
NOT_NULL = frozenset({"name", "relationship", "phones"})
FUTURE_SLACK = timedelta(minutes=5)  # a tablet's clock a little ahead is not "in the future"
ADDED = "added/"


@dataclass(frozen=True)
class Contact:
    """A person the case knows, from the EHR or added by hand (``row``)."""

    ref: str
    source: str  # "ehr" | "added"
    name: str
    relationship: Relationship
    phones: tuple[str, ...]
    address: str
    note: str | None = None
    row: CaseContact | None = None


def _of_row(row: CaseContact) -> Contact:
    return Contact(
        ref=f"{ADDED}{row.id}",
        source="added",
        name=row.name,
        relationship=of_code(row.relationship),
        phones=tuple(row.phones),
        address=row.address or "",
        note=row.note,
        row=row,
    )


def added_contacts(session: Session, case_id: int) -> list[CaseContact]:
    query = select(CaseContact).where(CaseContact.case_id == case_id).order_by(col(CaseContact.id))
    return list(session.exec(query))


def list_contacts(session: Session, case: Case, now: datetime | None = None) -> list[Contact]:
    """The EHR's contacts first (RelatedPerson, then Patient.contact), then those added by hand."""
    assert case.id is not None
    now = now or utcnow()
    found = [
        Contact(c.ref, "ehr", c.name, c.relationship, c.phones, c.address) for c in ehr_contacts(session, case, now)
    ]
    return found + [_of_row(row) for row in added_contacts(session, case.id)]


def get_added(session: Session, case: Case, contact_id: int) -> CaseContact:
    """A hand-added contact of this case, or 404 (a contact of another case is not found either)."""
    row = session.get(CaseContact, contact_id)
    if row is None or row.case_id != case.id:
        raise NotFound("contact", contact_id)
    return row


def find_contact(session: Session, case: Case, ref: str, *, field: tuple[str, ...] = ("body", "contact")) -> Contact:
    """The case's contact named by ``ref``; InvalidInput naming ``field`` when the case has none such."""
    for contact in list_contacts(session, case):
        if contact.ref == ref:
            return contact
    raise InvalidInput(field, f"{ref!r} is not a contact of this case")


def add_contact(
    session: Session,
    case: Case,
    *,
    actor: str,
    name: str,
    relationship: HandRelationship | str,
    phones: list[str],
    address: str | None = None,
    note: str | None = None,
) -> CaseContact:
    """Add a person the coordinator found (a relative's number from a neighbour, a guardian...)."""
    ensure_open(case)
    assert case.id is not None
    now = utcnow()
    row = CaseContact(
        case_id=case.id,
        name=name,
        relationship=HandRelationship(relationship),
        phones=list(phones),
        address=address or None,
        note=note or None,
        added_by=actor,
        added_at=now,
        updated_by=actor,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    record_event(
        session,
        case,
        actor=actor,
        kind=EventKind.contact_added,
        at=now,
        data={"contact": f"{ADDED}{row.id}", "name": name, "relationship": row.relationship},
    )
    return row


def update_contact(
    session: Session, case: Case, row: CaseContact, *, actor: str, expected_version: int | None, **values: Any
) -> bool:
    """Change a hand-added contact's fields in EDITABLE (only those sent). StaleVersion (409) when
    ``expected_version`` is not the stored one; False when nothing changed."""
    refuse_nulls(values, NOT_NULL)
    ensure_open(case)
    check_version(f"contact {row.id}", row.version, expected_version)
    unknown = set(values) - EDITABLE
    if unknown:
        raise TypeError(f"not editable: {sorted(unknown)}")
    if "relationship" in values:
        values["relationship"] = HandRelationship(values["relationship"])
    if "phones" in values:
        values["phones"] = list(values["phones"])
    for field in ("address", "note"):
        if field in values:
            values[field] = values[field] or None
    changed = changes(row, values)
    if not changed:
        return False
    row.updated_by, row.updated_at = actor, utcnow()
    session.add(row)
    session.flush()
    record_event(
        session,
        case,
        actor=actor,
        kind=EventKind.contact_updated,
        data={"contact": f"{ADDED}{row.id}", "name": row.name, "fields": sorted(changed)},
    )
    return True


@dataclass(frozen=True)
class Logged:
    entry: ContactLogEntry
    tasks_completed: list[int]
    next_step: Task | None  # created by this entry: everyone was tried and no one found


def log_contact(
    session: Session,
    case: Case,
    *,
    actor: str,
    contact_ref: str,
    kind: ContactKind | str,
    outcome: ContactOutcome | str,
    mappings_dir: Path,
    at: datetime | None = None,
    note: str | None = None,
) -> Logged:
    """Record a call, visit or message and its outcome, then let the plan follow (cases/contacts/plan.py):
    a relative or guardian found completes the find tasks they answer; everyone tried in vain while a
    find task is open offers the next step.

    InvalidInput names ``contact`` for a ref the case does not have, ``at`` for a time in the future.
    """
    ensure_open(case)
    assert case.id is not None
    now = utcnow()
    when = at or now
    if when > now + FUTURE_SLACK:
        raise InvalidInput(("body", "at"), "the call or visit cannot be in the future")
    contact = find_contact(session, case, contact_ref)
    kind, outcome = ContactKind(kind), ContactOutcome(outcome)
    entry = ContactLogEntry(
        case_id=case.id,
        contact_ref=contact.ref,
        contact_name=contact.name,
        relationship=contact.relationship.label,
        kind=kind,
        outcome=outcome,
        at=when,
        actor=actor,
        note=note or None,
        recorded_at=now,
    )
    session.add(entry)
    session.flush()
    data: dict[str, Any] = {
        "entry_id": entry.id,
        "contact": contact.ref,
        "name": contact.name,
        "relationship": contact.relationship.label,
        "contact_kind": kind,
        "outcome": outcome,
        "at": when,
        "note": entry.note,
    }
    record_event(session, case, actor=actor, kind=EventKind.contact_logged, at=now, data=data)
    done = plan.complete_found(
        session,
        case,
        relationship=contact.relationship,
        name=contact.name,
        outcome=outcome,
        actor=actor,
        mappings_dir=mappings_dir,
    )
    next_step = None
    if not done and plan.open_find_tasks(session, case.id) and _everyone_tried(session, case):
        step = _end_search(session, case, actor=actor, note=None, mappings_dir=mappings_dir, now=now, tried=True)
        next_step = step.task if step.created else None
    return Logged(entry, done, next_step)


def _everyone_tried(session: Session, case: Case) -> bool:
    assert case.id is not None
    refs = [c.ref for c in list_contacts(session, case)]
    return plan.everyone_exhausted(refs, contact_log(session, case.id))


def contact_log(session: Session, case_id: int) -> list[ContactLogEntry]:
    """The case's log, newest first (by when it happened, then by when it was written)."""
    query = (
        select(ContactLogEntry)
        .where(ContactLogEntry.case_id == case_id)
        .order_by(col(ContactLogEntry.at).desc(), col(ContactLogEntry.id).desc())
    )
    return list(session.exec(query))


@dataclass(frozen=True)
class NextStep:
    task: Task
    created: bool
    tasks_failed: list[int]


def no_one_found(session: Session, case: Case, *, actor: str, mappings_dir: Path, note: str | None = None) -> NextStep:
    """The coordinator ends the search: no relative or guardian can be found. The plan's next step
    is created once (a second call returns it, writing nothing); open find tasks end as failed."""
    ensure_open(case)
    return _end_search(session, case, actor=actor, note=note, mappings_dir=mappings_dir, now=utcnow(), tried=False)


def _end_search(
    session: Session, case: Case, *, actor: str, note: str | None, mappings_dir: Path, now: datetime, tried: bool
) -> NextStep:
    """The next step, and the event that says the search ended (``tried``: every contact was tried
    in vain; else the coordinator said so), unless the case already had its next step."""
    task, created, failed = plan.offer_next_step(
        session, case, actor=actor, reason=note or None, mappings_dir=mappings_dir, now=now
    )
    if created:
        record_event(
            session,
            case,
            actor=actor,
            kind=EventKind.no_relatives_found,
            at=now,
            data={
                "note": note or None,
                "everyone_tried": tried,
                "task_id": task.id,
                "next_step": task.kind,
                "tasks_failed": failed,
            },
        )
    return NextStep(task, created, failed)


def summary(entries: list[ContactLogEntry]) -> dict[str, tuple[int, ContactLogEntry]]:
    """Per contact ref: (attempts, the latest entry), from a log read newest first."""
    found: dict[str, tuple[int, ContactLogEntry]] = {}
    for entry in entries:
        count, latest = found.get(entry.contact_ref, (0, entry))
        found[entry.contact_ref] = (count + 1, latest)
    return found
