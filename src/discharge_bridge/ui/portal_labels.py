"""Labels of the receiver portal, the psychologist's pages and the services-delivered section.

English message ids marked with ``N_`` (the catalog test extracts them), translated at render time
in the reader's language; a value without a label is shown as it is. The catalogue of services
delivered carries its own labels in both languages (mappings/services_catalogue.yaml).
"""

from __future__ import annotations

from discharge_bridge.ui import i18n
from discharge_bridge.ui.i18n import N_

LABELS: dict[str, dict[str, str]] = {
    "referral_status": {
        "requested": N_("Sent to you"),
        "received": N_("Received"),
        "accepted": N_("Accepted"),
        "in-progress": N_("Help under way"),
        "completed": N_("Help delivered"),
        "rejected": N_("Declined"),
        "cancelled": N_("Cancelled by the hospital"),
    },
    # The button that gives the answer (what the receiver does).
    "referral_move": {
        "received": N_("Mark as received"),
        "accepted": N_("Accept"),
        "in-progress": N_("Help has started"),
        "completed": N_("Mark the help delivered"),
        "rejected": N_("Decline"),
    },
    "portal_group": {"new": N_("New"), "in_progress": N_("In progress"), "done": N_("Done")},
    "category": {
        "home_care": N_("Home care"),
        "social_home": N_("Residential social home"),
        "gerontology_centre": N_("Gerontology centre"),
        "hospice": N_("Hospice and palliative care"),
        "other_facility": N_("Other care facility"),
        "psychologist": N_("Psychologist"),
        "legal_aid": N_("Legal aid"),
        "guardianship": N_("Guardianship authority"),
        "social_protection": N_("Social protection office"),
        "charity": N_("Charity fund"),
        "other": N_("Other"),
    },
    "sex": {"male": N_("man"), "female": N_("woman"), "other": N_("other"), "unknown": N_("unknown")},
    "need": {
        "medical": N_("Medical"),
        "legal": N_("Legal"),
        "social": N_("Social"),
        "psychological": N_("Psychological"),
        "material": N_("Material"),
        "daily_living": N_("Daily living"),
    },
    "role": {
        "coordinator": N_("Coordinator"),
        "bed_manager": N_("Bed manager"),
        "it_admin": N_("Hospital IT"),
        "admin": N_("Administrator"),
        "psychologist": N_("Psychologist"),
        "receiver": N_("Receiving organisation"),
    },
}

# Messages after a submit, by the code the redirect carries (no free text in URLs).
FLASH = {
    "received": N_("Marked as received."),
    "accepted": N_("Accepted: the hospital sees it now."),
    "rejected": N_("Declined: the hospital sees your reason."),
    "in-progress": N_("Marked as under way."),
    "completed": N_("Marked as delivered. Thank you."),
    "date": N_("Proposed date saved."),
    "service_recorded": N_("Service recorded."),
    "service_struck": N_("Service struck out."),
}


def label(kind: str, value: object) -> str:
    """The label of ``value`` in the reader's language, or the value itself when it has none."""
    text = LABELS.get(kind, {}).get(str(value))
    return i18n.gettext(text) if text else str(value or "")


def flash(code: str | None) -> str | None:
    found = FLASH.get(code or "")
    return i18n.gettext(found) if found else None
