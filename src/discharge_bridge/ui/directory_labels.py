"""Words of the directory pages: categories, capacity, needs, and the reasons of a suggestion
(``directory.matching``'s codes) in the reader's language."""

from __future__ import annotations

from discharge_bridge.ui.i18n import N_, gettext

CATEGORIES = {
    "home_care": N_("Home care"),
    "social_home": N_("Residential social home"),
    "gerontology_centre": N_("Gerontology centre"),
    "hospice": N_("Hospice and palliative care"),
    "other_facility": N_("Rehabilitation or other care facility"),
    "psychologist": N_("Psychologist"),
    "legal_aid": N_("Legal aid"),
    "guardianship": N_("Guardianship authority"),
    "social_protection": N_("Social protection office"),
    "charity": N_("Charity fund"),
    "other": N_("Other help"),
}
CAPACITY = {"yes": N_("Places available"), "no": N_("No places now"), "waitlist": N_("Waiting list")}
NEEDS = {
    "medical": N_("medical"),
    "legal": N_("legal"),
    "social": N_("social"),
    "psychological": N_("psychological"),
    "material": N_("material"),
    "daily_living": N_("daily living"),
}
ACTIVITIES = {
    "go_outside": N_("cannot go outside"),
    "cook": N_("cannot cook"),
    "clean": N_("cannot clean"),
    "wash": N_("cannot wash"),
    "take_medicines": N_("cannot take medicines alone"),
    "manage_money": N_("cannot manage money"),
}
CONCEPTS = {
    "dementia": N_("dementia"),
    "homeless": N_("homeless"),
    "disability": N_("disability"),
    "no_guardian": N_("no guardian"),
    "no_contacts": N_("no relatives or contacts"),
    "palliative": N_("palliative"),
    "large_family": N_("large family"),
    "lives_alone": N_("lives alone"),
}
KINDS = {"state": N_("State"), "city": N_("City"), "charity": N_("Charity"), "private": N_("Private")}


def category(code: object) -> str:
    key = str(code)
    return gettext(CATEGORIES[key]) if key in CATEGORIES else key


def capacity(code: object) -> str:
    key = str(code)
    return gettext(CAPACITY[key]) if key in CAPACITY else key


def need(code: str) -> str:
    return gettext(NEEDS[code]) if code in NEEDS else code


def kind(code: str) -> str:
    return gettext(KINDS[code]) if code in KINDS else code


def _concept(code: str) -> str:
    return gettext(CONCEPTS[code]) if code in CONCEPTS else code.replace("_", " ")


def reason(code: str) -> str:
    """One reason of a suggestion (``need:social``, ``waitlist:30``...) in the reader's language."""
    head, _, value = code.partition(":")
    if head == "need":
        return gettext("needs: %(need)s") % {"need": need(value)}
    if head == "flag":
        concept, _, target = value.partition(">")
        return f"{_concept(concept)} → {category(target)}"
    if head == "alone":
        activities, _, target = value.partition(">")
        words = " + ".join(gettext(ACTIVITIES[a]) if a in ACTIVITIES else a for a in activities.split("+"))
        return f"{_concept('lives_alone')} + {words} → {category(target)}"
    if head == "age":
        age, _, low = value.partition(">=")
        return gettext("age %(age)s ≥ %(min)s") % {"age": age, "min": low}
    if head == "district":
        return gettext("serves the district %(district)s") % {"district": value}
    if head == "disability":
        return gettext("disability recorded")
    if head == "age_unknown":
        return gettext("age unknown")
    if head == "district_unknown":
        return gettext("district unknown")
    if head == "disability_not_recorded":
        return gettext("requires a disability: none recorded")
    if head == "residence":
        return gettext("residence required: %(what)s") % {"what": value}
    if head == "income":
        return gettext("income limit: %(what)s") % {"what": value}
    if head == "waitlist":
        if value:
            return gettext("waiting list: %(days)s days") % {"days": value}
        return gettext("waiting list")
    if head == "no_capacity":
        return gettext("no places now")
    return code
