"""The contacts section of the case page: the patient's relatives, guardians and other people (from
the EHR and added by hand), click-to-call numbers, and the log of calls and visits.

``contacts_section`` builds what ``templates/case/contacts.html`` needs; the case page passes it
as ``contacts``. It shows relatives' names and phones, which is identity: the page that shows it
records the view (``deps.log_view``), once for the whole page.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from discharge_bridge.cases.contacts import plan
from discharge_bridge.cases.contacts.models import ContactKind, ContactOutcome
from discharge_bridge.cases.contacts.service import Contact, contact_log, list_contacts, summary
from discharge_bridge.cases.models import Case, CaseStatus
from discharge_bridge.deps import SessionDep
from discharge_bridge.sources.service import list_sources
from discharge_bridge.ui import i18n
from discharge_bridge.ui.case_common import local_input
from discharge_bridge.ui.case_labels import N_, task_text
from discharge_bridge.ui.contact_labels import (
    kind_label,
    outcome_label,
    relationship_choices,
    relationship_text,
)
from discharge_bridge.users.principal import Principal
from discharge_bridge.users.roles import Permission

SEARCHING = N_("A search for relatives or a guardian is open")


def tel_href(number: str) -> str:
    """A ``tel:`` link for a number as typed ("+7 900 555-12-34" -> "tel:+79005551234")."""
    kept = "".join(ch for ch in number if ch.isdigit() or ch == "+")
    return "tel:" + (("+" + kept.replace("+", "")) if kept.startswith("+") else kept.replace("+", ""))


def _person(contact: Contact, seen: dict[str, Any], timezone: str) -> dict[str, Any]:
    attempts, latest = seen.get(contact.ref, (0, None))
    row = contact.row
    return {
        "ref": contact.ref,
        "id": row.id if row is not None else None,
        "source": contact.source,
        "name": contact.name or "—",
        "relationship": relationship_text(contact.relationship.label, contact.relationship.role),
        "relationship_code": contact.relationship.code,
        "phones": [{"number": p, "href": tel_href(p)} for p in contact.phones],
        "address": contact.address,
        "note": contact.note or "",
        "version": row.version if row is not None else None,
        "attempts": attempts,
        "last_outcome": outcome_label(latest.outcome) if latest is not None else None,
        "last_at": latest.at if latest is not None else None,
        # What the edit form shows (phones as one line, as typed into it).
        "inputs": {"phones": ", ".join(contact.phones), "address": contact.address, "note": contact.note or ""},
    }


def contacts_section(session: SessionDep, case: Case, principal: Principal, now: datetime) -> dict[str, Any]:
    """Everything ``case/contacts.html`` shows, in the reader's language (set it first)."""
    assert case.id is not None
    timezone = list_sources(session, source_ids=[case.source_id])[0].timezone
    entries = contact_log(session, case.id)
    seen = summary(entries)
    people = [_person(c, seen, timezone) for c in list_contacts(session, case, now)]
    searches = plan.open_find_tasks(session, case.id)
    step = plan.existing_next_step(session, case.id)
    return {
        "case_id": case.id,
        "timezone": timezone,
        "people": people,
        "log": [
            {
                "at": e.at,
                "actor": e.actor,
                "name": e.contact_name,
                "relationship": relationship_text(e.relationship),
                "kind": kind_label(e.kind),
                "outcome": outcome_label(e.outcome),
                "outcome_code": e.outcome,
                "note": e.note or "",
            }
            for e in entries
        ],
        "searches": [task_text(t.kind, t.description) for t in searches],
        "next_step": {"text": task_text(step.kind, step.description), "status": step.status} if step else None,
        "can_edit": case.status == CaseStatus.open and principal.can(Permission.coordinate),
        "attention": "searching" if searches else None,
        "note": i18n.gettext(SEARCHING) if searches else None,
        "choices": {
            "relationships": relationship_choices(),
            "kinds": [(k.value, kind_label(k)) for k in ContactKind],
            "outcomes": [(o.value, outcome_label(o)) for o in ContactOutcome],
        },
        "now_input": local_input(now, timezone),
    }
