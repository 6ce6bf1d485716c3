"""The services of the directory that fit a case, ranked with their reasons (``directory.matching``).

What the case tells about the person: the assessment's domains with needs written down, the daily-living
activities the person needs help with, the age today (from the patient's birth date), the concepts of
the flags (lives_alone, dementia, homeless, disability...) and the district of the home address when
the EHR sends one (FHIR ``Address.district``). Nothing of it leaves this function but the reasons.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from discharge_bridge.cases.assessment import case_flags
from discharge_bridge.cases.models import Case
from discharge_bridge.cases.repository import get_assessment
from discharge_bridge.clock import utcnow
from discharge_bridge.directory.matching import DAILY_LIVING_ACTIVITIES, PersonNeeds, Suggestion, suggest
from discharge_bridge.directory.service import list_services, organisations_by_id
from discharge_bridge.ingest.models import PatientSnapshot
from discharge_bridge.risk.ages import age_at

DOMAINS = ("medical", "legal", "social", "psychological", "material")
NEEDS_HELP = ("needs_help", "dependent")


def _district(raw: dict[str, Any]) -> str | None:
    """The district of the home address (else of the first address that names one)."""
    addresses = [a for a in raw.get("address") or [] if isinstance(a, dict)]
    addresses.sort(key=lambda a: a.get("use") != "home")
    for address in addresses:
        district = address.get("district")
        if isinstance(district, str) and district.strip():
            return district.strip()
    return None


def person_needs(session: Session, case: Case, *, at: datetime | None = None) -> PersonNeeds:
    assert case.id is not None
    needs: set[str] = set()
    assessment = get_assessment(session, case.id)
    if assessment is not None:
        for domain in DOMAINS:
            section = assessment.domains.get(domain) or {}
            if isinstance(section, dict) and section.get("needs"):
                needs.add(domain)
        for activity in DAILY_LIVING_ACTIVITIES:
            if assessment.daily_living.get(activity) in NEEDS_HELP:
                needs |= {"daily_living", f"daily_living.{activity}"}
    flags = set(case_flags(session, case))
    if assessment is not None:
        # The bedside's word wins over the chart's: the latest correction of a concept says whether it is
        # present (a flag confirmed, or one the EHR missed) or not (a flag found wrong).
        for correction in assessment.flag_corrections:
            concept = correction.get("concept")
            if isinstance(concept, str):
                present = bool(correction.get("flagged")) == bool(correction.get("correct"))
                (flags.add if present else flags.discard)(concept)
    if "adl_dependency" in flags:
        needs.add("daily_living")
    patient = session.exec(
        select(PatientSnapshot).where(
            PatientSnapshot.source_id == case.source_id, PatientSnapshot.fhir_id == case.patient_fhir_id
        )
    ).first()
    age = district = None
    if patient is not None:
        if patient.birth_date:
            age = age_at(patient.birth_date, (at or utcnow()).date())
        district = _district(patient.raw)
    return PersonNeeds(
        age=age,
        district=district,
        needs=frozenset(needs),
        disability="disability" in flags,
        flags=frozenset(flags),
    )


def suggestions_for_case(session: Session, case: Case, *, at: datetime | None = None) -> list[Suggestion]:
    """The active services that fit the case's person, best first."""
    services = list_services(session)
    organisations = organisations_by_id(session, (s.organisation_id for s in services))
    return suggest(services, person_needs(session, case, at=at), organisations=organisations)
