"""Which services of the directory fit a person: pure (no database, no HTTP), so it tests fast.

A person is what the case knows (``PersonNeeds``): age, district, the assessment domains that need
help, daily-living dependency and the flags' concepts. A service is read through the attributes of
``directory.models.DirectoryService`` (any object with them will do).

Each suggestion says why it fits (``fits``) and what does not fit or is unknown (``misses``) as
reason codes with their values, ``"<code>"`` or ``"<code>:<value>"``; ``explain`` words them in
English and the pages in the reader's language. A service the person is known to be outside of (age
out of range, a district it does not serve) is left out; what is unknown is a miss, never a reason to
leave it out: the coordinator checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

# Daily-living answers that say a person cannot manage at home alone (cases/schemas.py DailyLiving).
DAILY_LIVING_ACTIVITIES = ("go_outside", "cook", "clean", "wash", "take_medicines", "manage_money")

# (concept of a flag, categories it points to): the clinical or social reason behind each link.
FLAG_CATEGORIES: Mapping[str, tuple[str, ...]] = {
    # Dementia: day care and assessment at a gerontology centre; capacity questions go to guardianship.
    "dementia": ("gerontology_centre", "guardianship"),
    # No roof: the social protection office arranges shelter and benefits; a social home may take them.
    "homeless": ("social_protection", "social_home"),
    # Disability: the social protection office handles the status, aids and benefits.
    "disability": ("social_protection",),
    # Nobody to decide for the person: the guardianship authority.
    "no_guardian": ("guardianship",),
    "no_contacts": ("guardianship", "social_protection"),
    # End of life: hospice and palliative care.
    "palliative": ("hospice",),
    "large_family": ("social_protection", "charity"),
}
# Categories that help a person who lives alone and cannot manage daily living.
AT_HOME_HELP = ("home_care", "social_home")

POINTS_NEED = 3
POINTS_FLAG = 3
POINTS_ALONE = 4
POINTS_AGE = 1
POINTS_WAITLIST = -1
POINTS_FULL = -2


class ServiceLike(Protocol):
    id: int | None
    code: str
    organisation_id: int
    name: str
    category: Any
    area: list[str]
    needs: list[str]
    min_age: int | None
    max_age: int | None
    disability_required: bool
    residence_required: str | None
    income_limit: str | None
    documents: list[dict[str, Any]]
    capacity: Any
    waiting_days: int | None
    active: bool


class OrganisationLike(Protocol):
    id: int | None
    active: bool


@dataclass(frozen=True)
class PersonNeeds:
    """What the case knows of the person. ``needs`` holds the domains that need help (``social``,
    ``material``...), ``daily_living`` when any activity needs help, and ``daily_living.<activity>``
    for each such activity (``daily_living.cook``)."""

    age: int | None
    district: str | None
    needs: frozenset[str]
    disability: bool
    flags: frozenset[str]


@dataclass(frozen=True)
class Suggestion:
    service: Any
    organisation: Any
    score: int
    fits: list[str] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)
    documents: list[dict[str, Any]] = field(default_factory=list)


def _norm(text: str) -> str:
    return " ".join(text.casefold().replace("\u0451", "\u0435").split())  # yo read as ye, as people type it


def _served(area: Sequence[str], district: str) -> bool:
    return _norm(district) in {_norm(a) for a in area}


def _activities(needs: frozenset[str]) -> list[str]:
    return sorted(n.split(".", 1)[1] for n in needs if n.startswith("daily_living."))


def judge(service: ServiceLike, person: PersonNeeds) -> tuple[int, list[str], list[str]] | None:
    """(score, fits, misses) of one service for the person; None when the person is known to be outside it."""
    fits: list[str] = []
    misses: list[str] = []
    score = 0
    category = str(service.category)
    if person.age is not None:
        if service.min_age is not None and person.age < service.min_age:
            return None
        if service.max_age is not None and person.age > service.max_age:
            return None
    if service.area and person.district is not None and not _served(service.area, person.district):
        return None
    for need in sorted(set(service.needs) & person.needs):
        fits.append(f"need:{need}")
        score += POINTS_NEED
    for concept in sorted(person.flags):
        if category in FLAG_CATEGORIES.get(concept, ()):
            fits.append(f"flag:{concept}>{category}")
            score += POINTS_FLAG
    if "lives_alone" in person.flags and category in AT_HOME_HELP:
        activities = _activities(person.needs)
        if activities:
            fits.append(f"alone:{'+'.join(activities)}>{category}")
            score += POINTS_ALONE
    if score == 0:
        return None  # nothing of the person's needs points here: not a suggestion
    if service.min_age is not None:
        if person.age is None:
            misses.append("age_unknown")
        else:
            fits.append(f"age:{person.age}>={service.min_age}")
            score += POINTS_AGE
    elif service.max_age is not None and person.age is None:
        misses.append("age_unknown")
    if service.area:
        if person.district is None:
            misses.append("district_unknown")
        else:
            fits.append(f"district:{person.district}")
    if service.disability_required:
        if person.disability:
            fits.append("disability")
        else:
            misses.append("disability_not_recorded")
    if service.residence_required:
        misses.append(f"residence:{service.residence_required}")
    if service.income_limit:
        misses.append(f"income:{service.income_limit}")
    capacity = str(service.capacity)
    if capacity == "waitlist":
        misses.append(f"waitlist:{service.waiting_days}" if service.waiting_days else "waitlist")
        score += POINTS_WAITLIST
    elif capacity == "no":
        misses.append("no_capacity")
        score += POINTS_FULL
    return score, fits, misses


def suggest(
    services: Iterable[ServiceLike], person: PersonNeeds, *, organisations: Mapping[int, OrganisationLike]
) -> list[Suggestion]:
    """The active services that fit, best first (score, then fewer misses, then name)."""
    found: list[Suggestion] = []
    for service in services:
        organisation = organisations.get(service.organisation_id)
        if not service.active or organisation is None or not organisation.active:
            continue
        judged = judge(service, person)
        if judged is None:
            continue
        score, fits, misses = judged
        documents = [dict(d) for d in service.documents]
        found.append(Suggestion(service, organisation, score, fits, misses, documents))
    return sorted(found, key=lambda s: (-s.score, len(s.misses), s.service.name, s.service.code))


_CATEGORY_WORDS = {
    "home_care": "home care",
    "social_home": "social home",
    "gerontology_centre": "gerontology centre",
    "hospice": "hospice",
    "other_facility": "care facility",
    "psychologist": "psychologist",
    "legal_aid": "legal aid",
    "guardianship": "guardianship authority",
    "social_protection": "social protection office",
    "charity": "charity",
    "other": "other help",
}


def explain(reason: str) -> str:
    """A reason code in English words: ``need:social`` -> ``needs: social``."""
    code, _, value = reason.partition(":")
    if code == "need":
        return f"needs: {value.replace('_', ' ')}"
    if code == "flag":
        concept, _, category = value.partition(">")
        return f"{concept.replace('_', ' ')} -> {_CATEGORY_WORDS.get(category, category)}"
    if code == "alone":
        activities, _, category = value.partition(">")
        cannot = " + ".join(f"cannot {a.replace('_', ' ')}" for a in activities.split("+"))
        return f"lives alone + {cannot} -> {_CATEGORY_WORDS.get(category, category)}"
    if code == "age":
        age, _, low = value.partition(">=")
        return f"age {age} >= {low}"
    words = {
        "district": f"serves {value}",
        "disability": "disability recorded",
        "age_unknown": "age unknown",
        "district_unknown": "district unknown",
        "disability_not_recorded": "requires a disability: none recorded",
        "residence": f"residence required: {value}",
        "income": f"income limit: {value}",
        "waitlist": f"waiting list ({value} days)" if value else "waiting list",
        "no_capacity": "no places now",
    }
    return words.get(code, reason)
