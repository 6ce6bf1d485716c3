"""The contacts section's forms: add or edit a contact, log a call or visit, say no one was found.

Each POST calls the same service as the API (``cases.contacts.service``) through the API's input
schemas, then redirects back to the case page's contacts section (PRG). A refused submit (422, 409)
shows the case page again with what was typed and the message next to the field
(``ui.case.CaseFormRoute``). Times typed on the page are read in the hospital's time zone.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData

from discharge_bridge.cases.contacts.schemas import ContactIn, ContactPatch, LogEntryIn, NoneFoundIn
from discharge_bridge.cases.contacts.service import add_contact, get_added, log_contact, no_one_found, update_contact
from discharge_bridge.cases.models import Case
from discharge_bridge.deps import SessionDep, SettingsDep
from discharge_bridge.sources.service import list_sources
from discharge_bridge.ui.case import CaseFormRoute
from discharge_bridge.ui.case_common import (
    Coordinator,
    Form,
    PageCase,
    back_to_case,
    local_datetime,
    text,
    validated,
    version_of,
)
from discharge_bridge.validation import Id

router = APIRouter(route_class=CaseFormRoute, include_in_schema=False)
ANCHOR = "contacts"


def _phones(form: FormData) -> list[str]:
    """The phones field: numbers separated by commas, semicolons or new lines."""
    raw = text(form, "phones").replace(";", ",").replace("\n", ",")
    return [p.strip() for p in raw.split(",") if p.strip()]


def _contact_values(form: FormData) -> dict[str, Any]:
    return {
        "name": text(form, "name"),
        "relationship": text(form, "relationship"),
        "phones": _phones(form),
        "address": text(form, "address") or None,
        "note": text(form, "note") or None,
    }


@router.post("/cases/{case_id}/contacts")
def contact_add(case: PageCase, session: SessionDep, principal: Coordinator, form: Form) -> RedirectResponse:
    assert case.id is not None
    body = validated(ContactIn, _contact_values(form))
    add_contact(session, case, actor=principal.username, **body.model_dump())
    return back_to_case(case.id, "contact_added", ANCHOR)


# Before /contacts/{contact_id}: a path segment that is no number must not be read as an id.
@router.post("/cases/{case_id}/contacts/log")
def contact_log_add(
    case: PageCase, session: SessionDep, settings: SettingsDep, principal: Coordinator, form: Form
) -> RedirectResponse:
    assert case.id is not None
    body = validated(
        LogEntryIn,
        {
            "contact": text(form, "contact"),
            "kind": text(form, "kind"),
            "outcome": text(form, "outcome"),
            "at": local_datetime(text(form, "at"), _timezone(session, case), "at"),
            "note": text(form, "note") or None,
        },
    )
    logged = log_contact(
        session,
        case,
        actor=principal.username,
        contact_ref=body.contact,
        kind=body.kind,
        outcome=body.outcome,
        at=body.at,
        note=body.note,
        mappings_dir=settings.mappings_dir,
    )
    if logged.tasks_completed:
        flash = "contact_logged_found"
    elif logged.next_step is not None:
        flash = "contact_logged_next_step"
    else:
        flash = "contact_logged"
    return back_to_case(case.id, flash, ANCHOR)


@router.post("/cases/{case_id}/contacts/none-found")
def contacts_none_found(
    case: PageCase, session: SessionDep, settings: SettingsDep, principal: Coordinator, form: Form
) -> RedirectResponse:
    assert case.id is not None
    body = validated(NoneFoundIn, {"note": text(form, "note") or None})
    step = no_one_found(session, case, actor=principal.username, mappings_dir=settings.mappings_dir, note=body.note)
    return back_to_case(case.id, "contact_none_found" if step.created else "contact_none_found_again", ANCHOR)


@router.post("/cases/{case_id}/contacts/{contact_id}")
def contact_edit(
    case: PageCase,
    contact_id: Annotated[Id, Path()],
    session: SessionDep,
    principal: Coordinator,
    form: Form,
) -> RedirectResponse:
    """Save a hand-added contact as edited, for the version the form was rendered with (409 when stale)."""
    assert case.id is not None
    row = get_added(session, case, contact_id)
    body = validated(ContactPatch, {**_contact_values(form), "version": version_of(form)})
    values = body.model_dump(exclude={"version"})
    changed = update_contact(session, case, row, actor=principal.username, expected_version=body.version, **values)
    return back_to_case(case.id, "contact_saved" if changed else "contact_unchanged", ANCHOR)


def _timezone(session: SessionDep, case: Case) -> str:
    return list_sources(session, source_ids=[case.source_id])[0].timezone
