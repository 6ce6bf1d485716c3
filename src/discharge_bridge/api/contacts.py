"""A case's relatives, guardians and other contacts, and its contact log.

Contacts show identity (names, phones, addresses of the patient's people): each GET records one
view of the case's patient in the access log. Hand-added contacts change with If-Match (409 when
stale); contacts from the EHR are read-only here (the EHR is where they are corrected).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from discharge_bridge.cases.contacts.models import CaseContact, ContactLogEntry
from discharge_bridge.cases.contacts.schemas import (
    ContactIn,
    ContactOut,
    ContactPatch,
    LogEntryIn,
    LogEntryOut,
    LogResultOut,
    NextStepOut,
    NoneFoundIn,
)
from discharge_bridge.cases.contacts.service import (
    Contact,
    add_contact,
    contact_log,
    get_added,
    list_contacts,
    log_contact,
    no_one_found,
    summary,
    update_contact,
)
from discharge_bridge.cases.models import Case
from discharge_bridge.deps import (
    Actor,
    CurrentCase,
    CurrentPrincipal,
    IfMatch,
    SessionDep,
    SettingsDep,
    expected_version,
    log_view,
    require_by_method,
    set_etag,
)
from discharge_bridge.users.roles import Permission
from discharge_bridge.validation import Id

router = APIRouter(
    prefix="/api/v1",
    tags=["contacts"],
    dependencies=[Depends(require_by_method(Permission.read_cases, Permission.coordinate))],
)


def _view(contact: Contact, seen: dict[str, tuple[int, ContactLogEntry]]) -> ContactOut:
    attempts, latest = seen.get(contact.ref, (0, None))
    row = contact.row
    return ContactOut(
        ref=contact.ref,
        source="added" if row is not None else "ehr",
        id=row.id if row is not None else None,
        name=contact.name,
        relationship=contact.relationship.label,
        relationship_code=contact.relationship.code or None,
        role=contact.relationship.role or None,
        phones=list(contact.phones),
        address=contact.address or None,
        note=contact.note,
        added_by=row.added_by if row is not None else None,
        added_at=row.added_at if row is not None else None,
        version=row.version if row is not None else None,
        attempts=attempts,
        last_outcome=latest.outcome if latest is not None else None,
        last_at=latest.at if latest is not None else None,
    )


def _entry(entry: ContactLogEntry) -> LogEntryOut:
    return LogEntryOut(
        id=entry.id or 0,
        case_id=entry.case_id,
        contact=entry.contact_ref,
        contact_name=entry.contact_name,
        relationship=entry.relationship,
        kind=entry.kind,
        outcome=entry.outcome,
        at=entry.at,
        actor=entry.actor,
        note=entry.note,
        recorded_at=entry.recorded_at,
    )


def _seen(session: SessionDep, principal: CurrentPrincipal, case: Case, route: str) -> None:
    log_view(session, principal, route, [(case.source_id, case.patient_fhir_id)])


def _added_view(
    session: SessionDep, principal: CurrentPrincipal, case: Case, row: CaseContact, response: Response
) -> ContactOut:
    session.flush()
    _seen(session, principal, case, "api.contacts")
    set_etag(response, row.version)
    assert case.id is not None
    contact = next(c for c in list_contacts(session, case) if c.row is not None and c.row.id == row.id)
    return _view(contact, summary(contact_log(session, case.id)))


@router.get("/cases/{case_id}/contacts", response_model=list[ContactOut])
def contacts_index(case: CurrentCase, session: SessionDep, principal: CurrentPrincipal) -> list[ContactOut]:
    """The EHR's contacts (RelatedPerson, Patient.contact; merged records too), then those added by hand,
    each with its attempts and latest outcome."""
    assert case.id is not None
    _seen(session, principal, case, "api.contacts")
    seen = summary(contact_log(session, case.id))
    return [_view(c, seen) for c in list_contacts(session, case)]


@router.post("/cases/{case_id}/contacts", response_model=ContactOut, status_code=201)
def contacts_add(
    case: CurrentCase,
    body: ContactIn,
    session: SessionDep,
    response: Response,
    actor: Actor,
    principal: CurrentPrincipal,
) -> ContactOut:
    row = add_contact(
        session,
        case,
        actor=actor,
        name=body.name,
        relationship=body.relationship,
        phones=body.phones,
        address=body.address,
        note=body.note,
    )
    return _added_view(session, principal, case, row, response)


@router.patch(
    "/cases/{case_id}/contacts/{contact_id}",
    response_model=ContactOut,
    responses={
        409: {"description": "Stale version (`current_version`), or a closed case."},
        428: {"description": "Neither If-Match nor `version` was sent."},
    },
)
def contacts_patch(
    case: CurrentCase,
    contact_id: Annotated[Id, Path()],
    body: ContactPatch,
    session: SessionDep,
    response: Response,
    actor: Actor,
    principal: CurrentPrincipal,
    if_match: IfMatch,
) -> ContactOut:
    """Change a contact added by hand; needs the version edited (If-Match: "<version>" or ``version``)."""
    row = get_added(session, case, contact_id)
    expected = expected_version(f"contact {contact_id}", if_match, body.version, required=True)
    values = {f: getattr(body, f) for f in body.model_fields_set - {"version"}}
    update_contact(session, case, row, actor=actor, expected_version=expected, **values)
    return _added_view(session, principal, case, row, response)


@router.get("/cases/{case_id}/contact-log", response_model=list[LogEntryOut])
def contact_log_index(case: CurrentCase, session: SessionDep, principal: CurrentPrincipal) -> list[LogEntryOut]:
    """Calls, visits and messages, newest first."""
    assert case.id is not None
    _seen(session, principal, case, "api.contact_log")
    return [_entry(e) for e in contact_log(session, case.id)]


@router.post("/cases/{case_id}/contact-log", response_model=LogResultOut, status_code=201)
def contact_log_add(
    case: CurrentCase,
    body: LogEntryIn,
    session: SessionDep,
    settings: SettingsDep,
    actor: Actor,
    principal: CurrentPrincipal,
) -> LogResultOut:
    """Record an attempt and its outcome. A parent, guardian or relative reached (or who agreed to care)
    completes the open find tasks they answer; when every contact has been tried in vain while a find
    task is open, the plan's next step is created (``next_step_task_id``)."""
    logged = log_contact(
        session,
        case,
        actor=actor,
        contact_ref=body.contact,
        kind=body.kind,
        outcome=body.outcome,
        at=body.at,
        note=body.note,
        mappings_dir=settings.mappings_dir,
    )
    _seen(session, principal, case, "api.contact_log")
    return LogResultOut(
        **_entry(logged.entry).model_dump(),
        tasks_completed=logged.tasks_completed,
        next_step_task_id=logged.next_step.id if logged.next_step is not None else None,
    )


@router.post("/cases/{case_id}/contacts/none-found", response_model=NextStepOut)
def contacts_none_found(
    case: CurrentCase, body: NoneFoundIn, session: SessionDep, settings: SettingsDep, actor: Actor
) -> NextStepOut:
    """No relative or guardian can be found: the plan's next step (guardianship authority for a child or
    an adult who may lack capacity, else social protection), created once."""
    step = no_one_found(session, case, actor=actor, mappings_dir=settings.mappings_dir, note=body.note)
    return NextStepOut(
        task_id=step.task.id or 0, kind=step.task.kind, created=step.created, tasks_failed=step.tasks_failed
    )
