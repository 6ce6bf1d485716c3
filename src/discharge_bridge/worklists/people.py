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
from typing import Any

from sqlalchemy import ColumnElement, and_, tuple_
from sqlmodel import Session, col, select

from discharge_bridge.fhir.fields import Identifier, pick_identifier
from discharge_bridge.ingest.models import EncounterSnapshot, PatientSnapshot
from discharge_bridge.risk import loading
from discharge_bridge.risk.mapping import MappingError
from discharge_bridge.sources.models import Source
from discharge_bridge.users.models import User, UserSource
from discharge_bridge.users.roles import Role

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


def coordinator_names(session: Session, source_ids: Iterable[int]) -> dict[str, str]:
    """User name -> display name of the enabled coordinators of these hospitals: one query for all
    of them (a city-wide reader sees 100 hospitals), as ``users.service.coordinators_of`` for each."""
    query = (
        select(User.username, User.display_name)
        .join(UserSource, col(UserSource.user_id) == User.id)
        .where(
            col(UserSource.source_id).in_(sorted(set(source_ids))),
            User.role == Role.coordinator,
            col(User.disabled).is_(False),
        )
        .distinct()
    )
    return {username: name for username, name in session.execute(query)}


def mrn_systems(session: Session, source_ids: Iterable[int], mappings_dir: Path) -> dict[int, str | None]:
    """Each source's MRN system from its mapping (``None``: use the identifier typed MR); each
    mapping is looked up once however many hospitals share it."""
    found: dict[int, str | None] = {}
    systems: dict[str, str | None] = {}
    for source_id, name in session.execute(
        select(Source.id, Source.mapping).where(col(Source.id).in_(sorted(set(source_ids))))
    ):
        if name not in systems:
            try:
                systems[name] = loading.mapping(name, mappings_dir).identity.mrn_system
            except MappingError:  # a broken mapping is shown on the IT page; the pages still show names
                systems[name] = None
        found[source_id] = systems[name]
    return found


def identities(session: Session, keys: Iterable[Key], now: datetime, mappings_dir: Path) -> dict[Key, Identity]:
    """Identity of each (source_id, encounter_fhir_id) stored; unknown encounters are left out.

    One query for the whole list whatever the hospitals, reading the columns shown and never the
    raw resources. Its shape is the same for every page (lists of values, ``_among``), so SQLAlchemy
    compiles it once, not per page: an OR per hospital made a new statement for every page of a
    city-wide list."""
    wanted: dict[int, set[str]] = defaultdict(set)
    for source_id, encounter_id in keys:
        wanted[source_id].add(encounter_id)
    if not wanted:
        return {}
    systems = mrn_systems(session, wanted, mappings_dir)
    today = now.date()
    found: dict[Key, Identity] = {}
    rows = session.execute(
        select(*_ENCOUNTER, *_PATIENT)
        .select_from(EncounterSnapshot)
        .join(
            PatientSnapshot,
            (col(PatientSnapshot.source_id) == col(EncounterSnapshot.source_id))
            & (col(PatientSnapshot.fhir_id) == col(EncounterSnapshot.patient_fhir_id)),
            isouter=True,
        )
        .where(_among(session, wanted))
    ).all()
    for row in rows:
        if row.fhir_id in wanted[row.source_id]:
            found[(row.source_id, row.fhir_id)] = _identity(row, systems.get(row.source_id), now, today)
    return found


def _among(session: Session, wanted: dict[int, set[str]]) -> ColumnElement[bool]:
    """The admissions wanted, as each database finds them fastest at 100,000 (bench/worklist.py).
    PostgreSQL looks up each (hospital, encounter) pair: given two lists it probed every hospital
    with every encounter (1,750 index probes for a page of 50 rows from 35 hospitals, 6 ms against
    3). SQLite does not use an index for a list of pairs (a scan, 21 ms), so it gets the two lists
    and drops the pairs of another hospital here (2 ms)."""
    if session.get_bind().dialect.name == "postgresql":
        pairs = sorted((sid, eid) for sid, ids in wanted.items() for eid in ids)
        return tuple_(col(EncounterSnapshot.source_id), col(EncounterSnapshot.fhir_id)).in_(pairs)
    return and_(
        col(EncounterSnapshot.source_id).in_(sorted(wanted)),
        col(EncounterSnapshot.fhir_id).in_(sorted(set().union(*wanted.values()))),
    )


_ENCOUNTER: tuple[Any, ...] = (
    EncounterSnapshot.source_id,
    EncounterSnapshot.fhir_id,
    EncounterSnapshot.patient_fhir_id,
    EncounterSnapshot.ward,
    EncounterSnapshot.bed,
    EncounterSnapshot.period_start,
    EncounterSnapshot.period_end,
)
_PATIENT: tuple[Any, ...] = (
    col(PatientSnapshot.id).label("patient_row"),
    PatientSnapshot.name,
    PatientSnapshot.birth_date,
    PatientSnapshot.gender,
    PatientSnapshot.identifiers,
    PatientSnapshot.phone,
    PatientSnapshot.address,
)


def _identity(row: Any, mrn_system: str | None, now: datetime, today: date) -> Identity:
    start = row.period_start
    end = row.period_end or now
    known = row.patient_row is not None
    held = [Identifier(**i) for i in (row.identifiers or [])] if known else []
    return Identity(
        source_id=row.source_id,
        patient_fhir_id=row.patient_fhir_id,
        encounter_fhir_id=row.fhir_id,
        name=row.name if known else None,
        age=age_on(row.birth_date, today) if known else None,
        sex=row.gender if known else None,
        birth_date=row.birth_date if known else None,
        mrn=pick_identifier(held, mrn_system) or None,
        phone=row.phone if known else None,
        address=row.address if known else None,
        ward=row.ward,
        bed=row.bed,
        admitted_at=start,
        length_of_stay_days=max((end - start).days, 0) if start is not None else None,
    )
