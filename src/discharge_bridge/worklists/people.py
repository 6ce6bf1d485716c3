"""Who a case is about and where they lie, for the pages: one query for a whole list.

Identity comes from the Patient and Encounter snapshots stored at ingest (name, identifiers,
phone, address; ward and bed from Encounter.location), so a list of 50 cases is one join, never
one read per row. The MRN is the identifier of the system the source's mapping names
(``identity.mrn_system``), else the one typed MR. Showing any of this is a view of identity:
callers record it with ``access.record_view``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from sqlmodel import Session, col, select

from discharge_bridge.fhir.fields import Identifier, pick_identifier
from discharge_bridge.ingest.models import EncounterSnapshot, PatientSnapshot
from discharge_bridge.risk import loading
from discharge_bridge.risk.mapping import MappingError
from discharge_bridge.sources.models import Source

Key = tuple[int, str]  # (source_id, encounter_fhir_id)


@dataclass(frozen=True)
class Identity:
    source_id: int
    patient_fhir_id: str
    encounter_fhir_id: str
    name: str | None
    age: int | None
    sex: str | None  # AdministrativeGender: male, female, other, unknown
    birth_date: str | None
    mrn: str | None
    phone: str | None
    address: str | None
    ward: str | None
    bed: str | None
    admitted_at: datetime | None
    length_of_stay_days: int | None

    @property
    def label(self) -> str:
        """The name, or the MRN, or the FHIR id: what a list shows when it knows nothing better."""
        return self.name or self.mrn or f"Patient/{self.patient_fhir_id}"


def age_on(birth_date: str | None, today: date) -> int | None:
    """Full years on ``today``; a partial birth date (``1938``, ``1938-05``) counts from its first day."""
    if not birth_date:
        return None
    try:
        parts = [int(p) for p in birth_date.split("-")]
        born = date(parts[0], parts[1] if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else 1)
    except (ValueError, IndexError):
        return None
    years = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    return years if years >= 0 else None


def mrn_systems(session: Session, source_ids: Iterable[int], mappings_dir: Path) -> dict[int, str | None]:
    """Each source's MRN system from its mapping (``None``: use the identifier typed MR)."""
    found: dict[int, str | None] = {}
    for source in session.exec(select(Source).where(col(Source.id).in_(set(source_ids)))):
        try:
            found[source.id] = loading.mapping(source.mapping, mappings_dir).identity.mrn_system  # type: ignore[index]
        except MappingError:  # a broken mapping is shown on the IT page; the pages still show names
            found[source.id] = None  # type: ignore[index]
    return found


def identities(session: Session, keys: Iterable[Key], now: datetime, mappings_dir: Path) -> dict[Key, Identity]:
    """Identity of each (source_id, encounter_fhir_id) stored; unknown encounters are left out."""
    wanted: dict[int, set[str]] = defaultdict(set)
    for source_id, encounter_id in keys:
        wanted[source_id].add(encounter_id)
    if not wanted:
        return {}
    systems = mrn_systems(session, wanted, mappings_dir)
    today = now.date()
    found: dict[Key, Identity] = {}
    for source_id, encounter_ids in wanted.items():
        rows = session.exec(
            select(EncounterSnapshot, PatientSnapshot)
            .join(
                PatientSnapshot,
                (col(PatientSnapshot.source_id) == col(EncounterSnapshot.source_id))
                & (col(PatientSnapshot.fhir_id) == col(EncounterSnapshot.patient_fhir_id)),
                isouter=True,
            )
            .where(EncounterSnapshot.source_id == source_id, col(EncounterSnapshot.fhir_id).in_(encounter_ids))
        ).all()
        for encounter, patient in rows:
            found[(source_id, encounter.fhir_id)] = _identity(encounter, patient, systems.get(source_id), now, today)
    return found


def _identity(
    encounter: EncounterSnapshot, patient: PatientSnapshot | None, mrn_system: str | None, now: datetime, today: date
) -> Identity:
    start = encounter.period_start
    end = encounter.period_end or now
    held = [Identifier(**i) for i in (patient.identifiers if patient is not None else [])]
    return Identity(
        source_id=encounter.source_id,
        patient_fhir_id=encounter.patient_fhir_id,
        encounter_fhir_id=encounter.fhir_id,
        name=patient.name if patient is not None else None,
        age=age_on(patient.birth_date, today) if patient is not None else None,
        sex=patient.gender if patient is not None else None,
        birth_date=patient.birth_date if patient is not None else None,
        mrn=pick_identifier(held, mrn_system) or None,
        phone=patient.phone if patient is not None else None,
        address=patient.address if patient is not None else None,
        ward=encounter.ward,
        bed=encounter.bed,
        admitted_at=start,
        length_of_stay_days=max((end - start).days, 0) if start is not None else None,
    )
