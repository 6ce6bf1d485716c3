"""Who is in a bed: every current inpatient of the caller's hospitals, flagged or not, as SQL.

An admission is in a bed when its stored Encounter is current (a status and an inpatient class the
hospital's mapping counts as a current stay, no period end passed), its patient has not died, and
no discharge was recorded on its case. One stay sent as several Encounters (a parent admission and
its ward legs, or the copies on two merged records) is one bed: the assessment stage marks the leg
that stands for the stay (``RiskAssessment.current``), and an Encounter it has not judged yet
stands for itself unless another leg of the same person already does.

Each admission has a *ready date*: medically ready if known, else the expected discharge (the
case's, else the EHR's planned end). Against the hospital's local calendar it is past (delayed
beyond ready), today, this week (today to Sunday), later, or not known.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, false, func, literal, not_, or_, true
from sqlmodel import Session, col, select

from discharge_bridge.cases.handoffs.models import DestinationType, Handoff, HandoffStatus
from discharge_bridge.cases.models import Case
from discharge_bridge.ingest.models import EncounterSnapshot, PatientAlias, PatientSnapshot
from discharge_bridge.risk import loading
from discharge_bridge.risk.mapping import EncountersSpec, MappingError
from discharge_bridge.risk.models import RiskAssessment
from discharge_bridge.sources.models import Source

INACTIVE_HANDOFF = (HandoffStatus.declined, HandoffStatus.cancelled)
NO_HANDOFF = "none"  # the destination filter's value for "no handoff planned yet"
DESTINATIONS = (*(d.value for d in DestinationType), NO_HANDOFF)


class Readiness(StrEnum):
    delayed = "delayed"  # the ready date is before today: still in a bed past it
    today = "today"
    week = "week"  # today to the end of Sunday (today's included)
    later = "later"
    undated = "undated"


@dataclass(frozen=True)
class StayRule:
    """What counts as a current inpatient stay at these hospitals (their mapping's ``encounters:``)."""

    source_ids: tuple[int, ...]
    classes: frozenset[str]
    statuses: frozenset[str]


DEFAULT_STAYS = EncountersSpec()


@dataclass(frozen=True)
class BoardFilter:
    """``source_ids``: the caller's scope further narrowed by the hospital filter (None = all).
    ``stays``: per hospital, from its mapping (None: the default classes and statuses everywhere).
    ``rules_version``: the active rule set, whose assessments say which leg stands for a stay
    (None: any version's)."""

    source_ids: list[int] | None = None
    ward: str | None = None
    destination: str | None = None  # a DestinationType value, or NO_HANDOFF
    status: Readiness | None = None
    stays: tuple[StayRule, ...] | None = None
    rules_version: str | None = None


def stay_rules(session: Session, sources: list[Source], mappings_dir: Path) -> tuple[StayRule, ...]:
    """Each hospital's current-stay classes and statuses, hospitals with the same ones together.
    A mapping that does not load (the IT page says why) counts with the defaults."""
    by_mapping: dict[str, list[int]] = {}
    for source in sources:
        if source.id is not None:
            by_mapping.setdefault(source.mapping, []).append(source.id)
    grouped: dict[tuple[frozenset[str], frozenset[str]], list[int]] = {}
    for name, ids in by_mapping.items():  # a city's hundred hospitals share a few mappings
        try:
            mapping = loading.mapping(name, mappings_dir)
            key = (mapping.inpatient_classes, mapping.current_statuses)
        except MappingError:
            key = _defaults()
        grouped.setdefault(key, []).extend(ids)
    return tuple(StayRule(tuple(sorted(ids)), classes, statuses) for (classes, statuses), ids in grouped.items())


def _defaults() -> tuple[frozenset[str], frozenset[str]]:
    return (
        frozenset(c.upper() for c in DEFAULT_STAYS.inpatient_classes),
        frozenset(s.lower() for s in DEFAULT_STAYS.current_statuses),
    )


def _current_stay(flt: BoardFilter, now: datetime) -> ColumnElement[bool]:
    rules = flt.stays
    if rules is None:
        classes, statuses = _defaults()
        kinds = and_(
            func.upper(EncounterSnapshot.class_code).in_(sorted(classes)),
            col(EncounterSnapshot.status).in_(sorted(statuses)),
        )
    else:
        kinds = or_(
            false(),
            *(
                and_(
                    col(EncounterSnapshot.source_id).in_(rule.source_ids),
                    func.upper(EncounterSnapshot.class_code).in_(sorted(rule.classes)),
                    col(EncounterSnapshot.status).in_(sorted(rule.statuses)),
                )
                for rule in rules
            ),
        )
    not_ended = or_(col(EncounterSnapshot.period_end).is_(None), col(EncounterSnapshot.period_end) > now)
    return and_(kinds, not_ended)


def _assessed(*where: ColumnElement[bool], version: str | None) -> ColumnElement[bool]:
    query = (
        select(literal(1))
        .select_from(RiskAssessment)
        .where(col(RiskAssessment.source_id) == EncounterSnapshot.source_id, *where)
    )
    if version is not None:
        query = query.where(col(RiskAssessment.rules_version) == version)
    return query.exists()


def _stands_for_its_stay(version: str | None) -> ColumnElement[bool]:
    judged_current = _assessed(
        col(RiskAssessment.encounter_fhir_id) == EncounterSnapshot.fhir_id,
        col(RiskAssessment.current).is_(True),
        version=version,
    )
    judged = _assessed(col(RiskAssessment.encounter_fhir_id) == EncounterSnapshot.fhir_id, version=version)
    other_leg = _assessed(
        col(RiskAssessment.patient_fhir_id) == EncounterSnapshot.patient_fhir_id,
        col(RiskAssessment.current).is_(True),
        version=version,
    )
    merged = (
        select(literal(1))
        .select_from(PatientAlias)
        .where(
            col(PatientAlias.source_id) == EncounterSnapshot.source_id,
            col(PatientAlias.alias_id) == EncounterSnapshot.patient_fhir_id,
            or_(col(PatientAlias.kind) == "replaced", col(PatientAlias.confirmed_at).is_not(None)),
        )
        .exists()
    )
    return or_(judged_current, and_(not_(judged), not_(other_leg), not_(merged)))


def destination() -> Any:
    """The destination of the case's latest handoff still under way (None: no case, or none planned)."""
    return (
        select(Handoff.destination_type)
        .where(col(Handoff.case_id) == Case.id, col(Handoff.status).not_in(INACTIVE_HANDOFF))
        .order_by(col(Handoff.proposed_at).desc(), col(Handoff.id).desc())
        .limit(1)
        .correlate(Case)
        .scalar_subquery()
    )


def expected_at() -> Any:
    return func.coalesce(Case.expected_discharge_at, EncounterSnapshot.planned_end)


def ready_at() -> Any:
    """The ready date: medically ready, else the expected discharge (the case's, else the EHR's)."""
    return func.coalesce(Case.medically_ready_at, Case.expected_discharge_at, EncounterSnapshot.planned_end)


def in_bed(query: Any, flt: BoardFilter, now: datetime, *, with_ward: bool = True) -> Any:
    """``query`` (selecting from EncounterSnapshot) over the admissions in a bed that ``flt`` keeps."""
    query = (
        query.outerjoin(
            Case,
            and_(
                col(Case.source_id) == EncounterSnapshot.source_id,
                col(Case.encounter_fhir_id) == EncounterSnapshot.fhir_id,
            ),
        )
        .outerjoin(
            PatientSnapshot,
            and_(
                col(PatientSnapshot.source_id) == EncounterSnapshot.source_id,
                col(PatientSnapshot.fhir_id) == EncounterSnapshot.patient_fhir_id,
            ),
        )
        .where(
            _current_stay(flt, now),
            func.coalesce(PatientSnapshot.deceased, false()).is_(False),
            col(Case.actual_discharge_at).is_(None),
            _stands_for_its_stay(flt.rules_version),
        )
    )
    if flt.source_ids is not None:
        query = query.where(col(EncounterSnapshot.source_id).in_(flt.source_ids))
    if with_ward and flt.ward:
        query = query.where(col(EncounterSnapshot.ward) == flt.ward)
    if flt.destination == NO_HANDOFF:
        query = query.where(destination().is_(None))
    elif flt.destination:
        query = query.where(destination() == flt.destination)
    return query


@dataclass(frozen=True)
class Days:
    """A hospital's local calendar at ``now``: today's start and end, and the end of Sunday, in UTC."""

    today_start: datetime
    today_end: datetime
    week_end: datetime


def local_days(timezone: str, now: datetime) -> Days:
    zone = ZoneInfo(timezone)
    today = now.astimezone(zone).date()

    def start_of(day: Any) -> datetime:
        return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)

    return Days(
        start_of(today), start_of(today + timedelta(days=1)), start_of(today + timedelta(days=7 - today.weekday()))
    )


def readiness(ready: datetime | None, days: Days) -> Readiness:
    if ready is None:
        return Readiness.undated
    if ready < days.today_start:
        return Readiness.delayed
    if ready < days.today_end:
        return Readiness.today
    if ready < days.week_end:
        return Readiness.week
    return Readiness.later


def readiness_condition(status: Readiness, calendars: dict[int, Days]) -> ColumnElement[bool]:
    """``status`` as SQL, each hospital against its own local calendar."""
    ready = ready_at()
    if status == Readiness.undated:
        return ready.is_(None)  # type: ignore[no-any-return]
    alike: dict[Days, list[int]] = {}
    for source_id, days in calendars.items():
        alike.setdefault(days, []).append(source_id)
    branches = []
    for days, ids in alike.items():
        window = {
            Readiness.delayed: ready < days.today_start,
            Readiness.today: and_(ready >= days.today_start, ready < days.today_end),
            Readiness.week: and_(ready >= days.today_start, ready < days.week_end),
            Readiness.later: ready >= days.week_end,
        }[status]
        branches.append(and_(col(EncounterSnapshot.source_id).in_(sorted(ids)), window))
    return or_(false(), *branches)


def with_status(query: Any, flt: BoardFilter, calendars: dict[int, Days]) -> Any:
    return query.where(readiness_condition(flt.status, calendars)) if flt.status is not None else query.where(true())
