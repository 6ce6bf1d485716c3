"""Words of the contacts section and of the contact events on the timeline, in the reader's language.

Relationship labels come from ``cases.contacts.relationships`` (English message ids, translated
here); an EHR's own words ("nephew" where no code says it) are shown as they are.
"""

from __future__ import annotations

from contextlib import suppress
from datetime import datetime
from typing import Any

from discharge_bridge.cases.contacts.relationships import KINSHIP, HandRelationship
from discharge_bridge.ui import i18n
from discharge_bridge.ui.case_labels import N_

KINDS = {"call": N_("Call"), "visit": N_("Visit"), "message": N_("Message")}
OUTCOMES = {
    "reached": N_("Reached"),
    "no_answer": N_("No answer"),
    "wrong_number": N_("Wrong number"),
    "refused": N_("Refused to help"),
    "agreed_to_care": N_("Agreed to care"),
    "will_visit": N_("Will visit"),
    "other": N_("Other outcome"),
}
EVENT_TITLES = {
    "contact_added": N_("Contact added"),
    "contact_updated": N_("Contact changed"),
    "contact_logged": N_("Contact attempt"),
    "no_relatives_found": N_("No relatives found"),
}
FIELDS = {
    "name": N_("Name"),
    "relationship": N_("Relationship"),
    "phones": N_("Phones"),
    "address": N_("Address"),
    "note": N_("Note"),
}
CHANGED, WHEN = N_("Changed"), N_("When")
EVERYONE_TRIED = N_("Every contact was tried without success")
NEXT_STEPS = {
    "guardianship": N_("Request to the guardianship authority"),
    "social_services": N_("Request to social protection"),
}


def words(message: str) -> str:
    """A message id in the reader's language; text that is no message id (the EHR's) as it is."""
    return i18n.gettext(message) if message else ""


def relationship_text(label: str, role: str = "") -> str:
    """ "Daughter", "Nephew · Next of kin": the kinship and, when known, the contact role."""
    parts = [words(label), words(role)]
    return " · ".join(dict.fromkeys(p for p in parts if p))


def relationship_choices() -> list[tuple[str, str]]:
    return [(code.value, words(KINSHIP[code.value])) for code in HandRelationship]


def kind_label(value: object) -> str:
    return words(KINDS.get(str(value), str(value)))


def outcome_label(value: object) -> str:
    return words(OUTCOMES.get(str(value), str(value)))


def _named(name: str, relationship: object) -> str:
    shown = words(str(relationship or ""))
    return f"{name} ({shown})" if shown else name


def event_details(kind: str, data: dict[str, Any], timezone: str) -> list[str]:
    """The detail lines of a contact event (``cases/events.py``: contact_added ... no_relatives_found)."""
    name = str(data.get("name") or "")
    if kind == "contact_added":
        return [_named(name, _kinship(data.get("relationship")))]
    if kind == "contact_updated":
        changed = ", ".join(words(FIELDS.get(str(f), str(f))) for f in data.get("fields") or [])
        return [name, f"{i18n.gettext(CHANGED)}: {changed}" if changed else ""]
    if kind == "contact_logged":
        when = data.get("at")
        lines = [
            f"{kind_label(data.get('contact_kind'))}: {_named(name, data.get('relationship'))}",
            outcome_label(data.get("outcome")),
        ]
        if isinstance(when, str):
            with suppress(ValueError):
                lines.append(f"{i18n.gettext(WHEN)}: {i18n.fmt_datetime(datetime.fromisoformat(when), timezone)}")
        return [*lines, str(data.get("note") or "")]
    if kind == "no_relatives_found":
        step = NEXT_STEPS.get(str(data.get("next_step") or ""))
        tried = words(EVERYONE_TRIED) if data.get("everyone_tried") else ""
        return [words(step) if step else "", tried, str(data.get("note") or "")]
    return []


def _kinship(code: object) -> str:
    return KINSHIP.get(str(code or ""), str(code or ""))


# Messages after a successful submit of the contacts section (codes starting "contact": the case page
# opens the contacts section again, ui/case_view.py FLASH_SECTIONS).
FLASH = {
    "contact_added": N_("Contact added."),
    "contact_saved": N_("Contact saved."),
    "contact_unchanged": N_("The contact was already so: nothing changed."),
    "contact_logged": N_("Contact attempt recorded."),
    "contact_logged_found": N_("Contact attempt recorded; the search it answers is complete."),
    "contact_logged_next_step": N_("Contact attempt recorded. No one was found: the next step is in the action plan."),
    "contact_none_found": N_("Recorded: no relatives found. The next step is in the action plan."),
    "contact_none_found_again": N_("The next step is already in the action plan."),
}
