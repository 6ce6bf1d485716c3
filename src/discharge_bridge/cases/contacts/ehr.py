"""The contacts the EHR holds for a case's patient: RelatedPerson rows and Patient.contact entries.

Read from the stored snapshots of the patient and of every record merged into it (Patient.link,
``ingest.aliases.records_of``), so relatives recorded on an old duplicate are not lost. A
RelatedPerson with ``active: false`` is no longer the patient's relative and is left out; a
Patient.contact whose ``period`` ended is left out too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from discharge_bridge.cases.contacts.relationships import Relationship, read
from discharge_bridge.cases.models import Case
from discharge_bridge.fhir.fields import FHIR_ID, address_line, as_list, human_name, obj, parse_instant, phones, text
from discharge_bridge.ingest import aliases
from discharge_bridge.ingest.models import ClinicalSnapshot, PatientSnapshot


@dataclass(frozen=True)
class EhrContact:
    ref: str  # "RelatedPerson/<id>" or "Patient/<id>/contact/<element id or index>"
    name: str
    relationship: Relationship
    phones: tuple[str, ...]
    address: str


def patient_records(session: Session, case: Case) -> list[str]:
    """The case's patient record first, then the records merged into it."""
    merged = aliases.records_of(session, case.source_id, [case.patient_fhir_id])[case.patient_fhir_id]
    return [case.patient_fhir_id, *sorted(merged - {case.patient_fhir_id})]


def ehr_contacts(session: Session, case: Case, now: datetime) -> list[EhrContact]:
    """RelatedPersons first, then Patient.contact entries, each record in turn; the same person sent
    both ways (same name and phones) is shown once."""
    records = patient_records(session, case)
    related = session.exec(
        select(ClinicalSnapshot)
        .where(
            ClinicalSnapshot.source_id == case.source_id,
            ClinicalSnapshot.resource_type == "RelatedPerson",
            col(ClinicalSnapshot.patient_fhir_id).in_(records),
        )
        .order_by(col(ClinicalSnapshot.fhir_id))
    ).all()
    patients = {
        p.fhir_id: p
        for p in session.exec(
            select(PatientSnapshot).where(
                PatientSnapshot.source_id == case.source_id, col(PatientSnapshot.fhir_id).in_(records)
            )
        )
    }
    found: list[EhrContact] = []
    for row in sorted(related, key=lambda r: (records.index(r.patient_fhir_id), r.fhir_id)):
        if row.raw.get("active") is False:
            continue
        found.append(_related_person(row.fhir_id, row.raw))
    for pid in records:
        if pid in patients:
            found += _patient_contacts(pid, patients[pid].raw, now)
    unique: dict[tuple[str, tuple[str, ...]], EhrContact] = {}
    for contact in found:
        unique.setdefault((contact.name.casefold(), contact.phones), contact)
    return [c for c in unique.values() if c.name or c.phones]


def _related_person(fhir_id: str, raw: dict[str, Any]) -> EhrContact:
    return EhrContact(
        ref=f"RelatedPerson/{fhir_id}",
        name=human_name(raw.get("name")),
        relationship=read(raw.get("relationship")),
        phones=tuple(phones(raw.get("telecom"))),
        address=address_line(raw.get("address")),
    )


def _patient_contacts(pid: str, raw: dict[str, Any], now: datetime) -> list[EhrContact]:
    found = []
    for index, item in enumerate(as_list(raw.get("contact"))):
        if not isinstance(item, dict):
            continue
        ended = parse_instant(obj(item.get("period")).get("end"))
        if ended is not None and ended < now:
            continue
        element = text(item.get("id"))
        key = element if FHIR_ID.match(element) else str(index)
        # A contact may be an organisation only (a care home): its name is the reference's display.
        name = human_name(item.get("name")) or text(obj(item.get("organization")).get("display"))
        found.append(
            EhrContact(
                ref=f"Patient/{pid}/contact/{key}",
                name=name,
                relationship=read(item.get("relationship")),
                phones=tuple(phones(item.get("telecom"))),
                address=address_line(item.get("address")),
            )
        )
    return found
