"""Labels of the referral and consent sections of the case page (English message ids; Russian in
locale/ru/LC_MESSAGES/referrals.po), and the messages after their forms."""

from __future__ import annotations

from discharge_bridge.ui import i18n


def N_(message: str) -> str:  # the gettext convention for "translate later"
    return message


REFERRAL_STATUS = {
    "requested": N_("Sent"),
    "received": N_("Received"),
    "accepted": N_("Accepted"),
    "in-progress": N_("Help under way"),
    "completed": N_("Help delivered"),
    "rejected": N_("Declined"),
    "cancelled": N_("Cancelled"),
}
# The button that makes each move (a coordinator may record the receiver's answer given by phone).
REFERRAL_MOVE = {
    "received": N_("Mark received"),
    "accepted": N_("Mark accepted"),
    "in-progress": N_("Mark help under way"),
    "completed": N_("Mark help delivered"),
    "rejected": N_("Mark declined"),
    "cancelled": N_("Cancel the referral"),
}
CATEGORY = {
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
    "other": N_("Other service"),
}
CONSENT_METHOD = {
    "signed_form": N_("Signed form"),
    "verbal_witnessed": N_("Verbal, with a witness"),
    "guardian_signed": N_("Signed by the guardian"),
}
CONSENT_GIVER = {
    "patient": N_("The patient"),
    "guardian": N_("Guardian"),
    "representative": N_("Representative"),
}
CONSENT_STATUS = {"active": N_("Active"), "inactive": N_("Revoked")}

FLASH = {
    "referral_sent": N_("Referral sent."),
    "referral_moved": N_("Referral status changed."),
    "referral_documents": N_("Referral documents saved."),
    "consent_recorded": N_("Consent recorded."),
    "consent_revoked": N_("Consent revoked."),
}

TABLES = {
    "referral_status": REFERRAL_STATUS,
    "referral_move": REFERRAL_MOVE,
    "category": CATEGORY,
    "consent_method": CONSENT_METHOD,
    "consent_giver": CONSENT_GIVER,
    "consent_status": CONSENT_STATUS,
}


def network_label(kind: str, value: object) -> str:
    """The value's label in the reader's language; a value without one is shown as it is."""
    text = TABLES[kind].get(str(value))
    return i18n.gettext(text) if text else str(value)


# The timeline (ui/case_timeline.py): the consent and referral events of cases/events.py.
EVENT_TITLES = {
    "consent_recorded": N_("Consent recorded"),
    "consent_revoked": N_("Consent revoked"),
    "referral_created": N_("Referral sent"),
    "referral_updated": N_("Referral changed"),
}
PROPOSED, REASON_TEXT, DOCUMENT_READY, DOCUMENT_NOT_READY = (
    N_("Proposed date"),
    N_("Reason"),
    N_("Document ready"),
    N_("Document no longer ready"),
)


def event_details(kind: str, data: dict[str, object]) -> list[str]:
    """The detail lines of a consent or referral event; the log holds no names, so neither do these."""
    if kind == "consent_recorded":
        categories = data.get("categories")
        kinds = [network_label("category", c) for c in categories] if isinstance(categories, list) else []
        return [network_label("consent_method", data.get("method")), ", ".join(kinds)]
    if kind == "referral_created":
        return [
            f"#{data.get('referral_id')}",
            str(data.get("organisation") or ""),
            network_label("category", data.get("category")),
        ]
    if kind != "referral_updated":
        return []
    details = [f"#{data.get('referral_id')}"]
    status = data.get("status")
    if isinstance(status, list) and len(status) == 2:
        details.append(" → ".join(network_label("referral_status", s) for s in status))
    if data.get("reason"):
        details.append(f"{i18n.gettext(REASON_TEXT)}: {data['reason']}")
    proposed = data.get("proposed_date")
    if isinstance(proposed, list) and proposed[-1]:
        details.append(f"{i18n.gettext(PROPOSED)}: {proposed[-1]}")
    documents = data.get("documents")
    if isinstance(documents, dict):
        for code, change in documents.items():
            done = isinstance(change, list) and bool(change[-1])
            details.append(f"{i18n.gettext(DOCUMENT_READY if done else DOCUMENT_NOT_READY)}: {code}")
    return details
