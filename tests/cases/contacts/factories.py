"""A case whose patient has relatives in the EHR, stored as a sync would store them."""

from __future__ import annotations

from itertools import count
from typing import Any

from sqlmodel import Session

from discharge_bridge.cases.models import Case
from discharge_bridge.cases.service import open_case
from discharge_bridge.ingest.normalise import normalise
from discharge_bridge.ingest.store import upsert_snapshots
from tests.support.factories import put_encounter, put_risk

# Above the versions tests.support.factories.put_encounter gives the bare Patient it stores (one more per call,
# counted per process): the Patient with contacts written after it must be newer, or the store ignores it.
_patient_versions = count(1_000_000)
V3 = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
V2_0131 = "http://terminology.hl7.org/CodeSystem/v2-0131"


def related_person(rid: str, pid: str, code: str, name: str, phone: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "RelatedPerson",
        "id": rid,
        "meta": {"versionId": "1"},
        "active": True,
        "patient": {"reference": f"Patient/{pid}"},
        "relationship": [{"coding": [{"system": V3, "code": code}]}],
        "name": [{"use": "official", "text": name}],
        "telecom": [{"system": "phone", "value": phone, "use": "mobile"}],
        **extra,
    }


def contact(role: str, words: str, name: str, phone: str, **extra: Any) -> dict[str, Any]:
    """A Patient.contact with a v2-0131 role and the kinship only in ``text``, as many EHRs send it."""
    return {
        "relationship": [{"coding": [{"system": V2_0131, "code": role}], "text": words}],
        "name": {"family": name.split()[0], "given": name.split()[1:]},
        "telecom": [{"system": "phone", "value": phone}],
        **extra,
    }


def store(session: Session, source_id: int, *resources: dict[str, Any]) -> None:
    upsert_snapshots(session, source_id, [normalise(r) for r in resources])


def case_with_family(
    session: Session,
    source_id: int,
    *,
    eid: str = "adm1",
    pid: str = "p1",
    concepts: tuple[str, ...] = ("lives_alone",),
    age: int | None = 82,
) -> Case:
    """An admission of ``pid`` (flagged with ``concepts``), its case, a daughter as a RelatedPerson and
    a nephew as a Patient.contact."""
    put_encounter(session, source_id, eid, pid)
    store(
        session,
        source_id,
        {
            "resourceType": "Patient",
            "id": pid,
            "meta": {"versionId": str(next(_patient_versions))},
            "birthDate": "1944-03-02",
            "name": [{"text": "Ivanova Maria Petrovna"}],
            "contact": [contact("N", "nephew", "Sidorov Pavel Ivanovich", "+7 900 555-01-02")],
        },
        related_person(f"{pid}-rp1", pid, "DAU", "Kulikova Anna Ivanovna", "+7 900 555-12-91"),
    )
    risk = put_risk(session, source_id, eid, pid, concepts=concepts)
    risk.age = age
    session.add(risk)
    case, _ = open_case(
        session,
        source_id=source_id,
        encounter_fhir_id=eid,
        patient_fhir_id=pid,
        priority="high",
        reasons_concepts=list(concepts),
    )
    return case
