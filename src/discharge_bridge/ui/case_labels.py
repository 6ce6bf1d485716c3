"""Display labels of the values people see on the coordinator's pages (priorities, statuses, domains...).

The tables hold English message ids, marked with ``N_`` so the catalog test extracts them;
``label(kind, value)`` translates at render time, in the reader's language. A value without a
label (a code added to a mapping file later) is shown as it is rather than hidden.
"""

from __future__ import annotations

import re

from discharge_bridge.risk.rules import reason_text
from discharge_bridge.ui import i18n


def N_(message: str) -> str:  # the gettext convention for "translate later"
    return message


LABELS: dict[str, dict[str, str]] = {
    "priority": {"high": N_("High"), "medium": N_("Medium"), "low": N_("Low")},
    "case_status": {"open": N_("Open"), "closed": N_("Closed"), "cancelled": N_("Cancelled")},
    "outcome": {
        "discharged": N_("Discharged"),
        "not_needed": N_("No coordination needed"),
        "declined": N_("Help declined"),
        "transferred": N_("Transferred to another hospital"),
        "died": N_("Died"),
        "other": N_("Other"),
    },
    "domain": {
        "medical": N_("Medical"),
        "legal": N_("Legal"),
        "social": N_("Social"),
        "psychological": N_("Psychological"),
        "material": N_("Material"),
        "daily_living": N_("Daily living"),
    },
    "task_status": {
        "requested": N_("Requested"),
        "accepted": N_("Accepted"),
        "in-progress": N_("In progress"),
        "on-hold": N_("On hold"),
        "completed": N_("Completed"),
        "cancelled": N_("Cancelled"),
        "failed": N_("Failed"),
    },
    # The button that moves a task into the status (what the person does, not where it ends up).
    "task_move": {
        "accepted": N_("Accept"),
        "in-progress": N_("Start"),
        "on-hold": N_("Put on hold"),
        "completed": N_("Complete"),
        "cancelled": N_("Cancel task"),
        "failed": N_("Could not be done"),
    },
    "task_priority": {"routine": N_("Routine"), "urgent": N_("Urgent")},
    "destination": {
        "home_with_care": N_("Home with home care"),
        "social_home": N_("Social home"),
        "gerontology_centre": N_("Gerontology centre"),
        "relatives": N_("Relatives"),
        "hospice": N_("Hospice / palliative care"),
        "other_facility": N_("Other facility"),
    },
    "handoff_status": {
        "proposed": N_("Proposed"),
        "referred": N_("Referred"),
        "accepted": N_("Accepted"),
        "scheduled": N_("Scheduled"),
        "completed": N_("Completed"),
        "declined": N_("Declined"),
        "cancelled": N_("Cancelled"),
    },
    "handoff_move": {
        "referred": N_("Refer"),
        "accepted": N_("Receiver accepted"),
        "scheduled": N_("Schedule"),
        "completed": N_("Handover completed"),
        "declined": N_("Receiver declined"),
        "cancelled": N_("Cancel handoff"),
    },
    "barrier": {
        "awaiting_assessment": N_("Awaiting assessment"),
        "awaiting_placement": N_("Awaiting placement"),
        "awaiting_care_package": N_("Awaiting care package"),
        "awaiting_equipment": N_("Awaiting equipment"),
        "family_choice": N_("Family choice"),
        "housing": N_("Housing"),
        "documents": N_("Documents"),
        "guardianship": N_("Guardianship"),
        "funding": N_("Funding"),
        "other": N_("Other"),
    },
    "concept": {
        "elderly": N_("Elderly"),
        "lives_alone": N_("Lives alone"),
        "no_contacts": N_("No contact person"),
        "dementia": N_("Dementia"),
        "homeless": N_("Homeless"),
        "disability": N_("Disability"),
        "adl_dependency": N_("Dependent in daily living"),
        "large_family": N_("Large family"),
        "no_guardian": N_("Child without a guardian"),
        "readmission": N_("Readmission"),
        "no_caregiver": N_("No caregiver"),
        "social_isolation": N_("Social isolation"),
    },
    "daily_living": {
        "go_outside": N_("Go outside"),
        "cook": N_("Cook"),
        "clean": N_("Clean"),
        "wash": N_("Wash"),
        "take_medicines": N_("Take medicines"),
        "manage_money": N_("Manage money"),
    },
    "ability": {"independent": N_("Independent"), "needs_help": N_("Needs help"), "dependent": N_("Dependent")},
    "housing": {
        "own_home": N_("Own home"),
        "rented": N_("Rented"),
        "relatives": N_("With relatives"),
        "homeless": N_("Homeless"),
        "institution": N_("Institution"),
    },
    "date_source": {"ehr": N_("from the EHR"), "person": N_("set by a person")},
    # Patient.gender (FHIR AdministrativeGender), as the pages show it beside the age.
    "sex": {"male": N_("male"), "female": N_("female"), "other": N_("sex: other"), "unknown": N_("sex unknown")},
    "section": {
        "domains": N_("Five domains"),
        "daily_living": N_("Daily living"),
        "living_situation": N_("Living situation"),
    },
}

# The descriptions of the tasks the service creates itself (cases/service.py), shown translated.
SYSTEM_TASKS = {
    "first_visit": N_("First visit: meet the patient, confirm the living situation, start the needs assessment"),
    "find_guardian": N_("Find the child's parent or legal guardian"),
    "find_relatives": N_("Find relatives or other people who can help"),
    # The plan's next step when no relative is found (cases/contacts/plan.py: NEXT_STEP_TEXT).
    "guardianship": N_("Request to the guardianship authority: no parent, guardian or relative could be found"),
    "social_services": N_("Request to social protection: no relatives could be found to care for the patient"),
}
DOMAINS = ("medical", "legal", "social", "psychological", "material")
DAILY_LIVING = tuple(LABELS["daily_living"])
ABILITIES = tuple(LABELS["ability"])
HOUSING = tuple(LABELS["housing"])
# A rule's text may say the birth year ("Aged 87 at admission (born 1938)"): the pages show the age only.
_BORN = re.compile(r"\s*\(born [^)]*\)")


def label(kind: str, value: object) -> str:
    """The reader's-language label of ``value`` in table ``kind``; the value itself when unknown."""
    if value is None:
        return "—"
    text = str(value)
    found = LABELS[kind].get(text)
    return i18n.gettext(found) if found else text


def task_text(kind: object, description: object) -> str:
    """A task's description; the service's own tasks in the reader's language (a person's as typed)."""
    known = SYSTEM_TASKS.get(str(kind))
    if known is not None and description == known:
        return i18n.gettext(known)
    return str(description or "")


def concept_label(concept: str) -> str:
    """A reason's concept; a combination ("elderly+lives_alone") joins its parts."""
    return " + ".join(label("concept", part) for part in concept.split("+") if part)


def reason_view(reason: dict[str, object]) -> dict[str, object]:
    """A risk reason as shown: the label in words, the points, the rule's text and the evidence references."""
    evidence = reason.get("evidence") or []
    return {
        "label": concept_label(str(reason.get("concept", ""))),
        "points": reason.get("points"),
        "text": _BORN.sub("", reason_text(reason, i18n.current_language())),
        "evidence": [str(e) for e in evidence] if isinstance(evidence, list) else [],
    }


def worklist_reasons(reasons: list[dict[str, object]]) -> dict[str, list[dict[str, object]]]:
    """Reasons for a compact list: single concepts with their evidence; combinations once per label.

    Two combination rules can name the same concepts (aged 65+ and aged 75+ with no contact): the
    list shows the label once with the points added; the case page shows every rule.
    """
    singles: list[dict[str, object]] = []
    combos: dict[str, int] = {}
    for reason in reasons:
        view = reason_view(reason)
        if "+" in str(reason.get("concept", "")):
            points = view["points"]
            combos[str(view["label"])] = combos.get(str(view["label"]), 0) + (points if isinstance(points, int) else 0)
        else:
            singles.append(view)
    return {"singles": singles, "combos": [{"label": k, "points": v} for k, v in combos.items()]}
