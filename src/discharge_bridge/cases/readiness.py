"""Discharge readiness: the expected discharge date and the medically-ready date, with provenance.

Each date remembers where it came from. A person's entry always wins: the EHR feed fills and
updates a date only while no person has set it (a known pitfall of bed tools is a nightly feed
erasing what the ward agreed in the morning).

A person's new date falls between the day of admission (in the hospital's time zone) and a year
ahead, within the years the API takes: a discharge expected in 1990 or a readiness in 2100 is a
typing error, refused with the field named (``InvalidInput``), from the API and the page alike.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlmodel import Session

from discharge_bridge.cases.errors import InvalidInput, check_version
from discharge_bridge.cases.events import EventKind, record_event
from discharge_bridge.cases.models import Case, DateSource
from discharge_bridge.cases.repository import get_encounter
from discharge_bridge.db import utcnow
from discharge_bridge.sources.models import Source
from discharge_bridge.validation import READY_AFTER, out_of_years, too_far

DATES = ("expected_discharge_at", "medically_ready_at")
_PREFIX = {"expected_discharge_at": "expected_discharge", "medically_ready_at": "medically_ready"}


def _set(case: Any, field: str, value: datetime | None, source: DateSource | None, by: str | None) -> list[Any] | None:
    prefix = _PREFIX[field]
    old = (getattr(case, field), getattr(case, f"{prefix}_source"))
    if old == (value, source) and getattr(case, f"{prefix}_set_by") == by:
        return None
    setattr(case, field, value)
    setattr(case, f"{prefix}_source", source)
    setattr(case, f"{prefix}_set_by", by)
    return [old[0], value]


def take_ehr_dates(
    target: Any, *, expected_discharge_at: datetime | None, medically_ready_at: datetime | None, actor: str
) -> dict[str, Any]:
    """Set the feed's dates on ``target`` (a Case, or a row of one read in bulk), except where a person
    set the date; None means the feed has no value. Returns ``{field: [old, new]}`` of what changed."""
    changed: dict[str, Any] = {}
    for field, value in (("expected_discharge_at", expected_discharge_at), ("medically_ready_at", medically_ready_at)):
        if value is None or getattr(target, f"{_PREFIX[field]}_source") == DateSource.person:
            continue
        diff = _set(target, field, value, DateSource.ehr, actor)
        if diff is not None:
            changed[field] = diff
    return changed


def apply_ehr_dates(
    session: Session,
    case: Case,
    *,
    expected_discharge_at: datetime | None,
    medically_ready_at: datetime | None = None,
    actor: str = "ehr",
) -> bool:
    """Take the feed's dates, except where a person set the date; None means the feed has no value.

    Returns whether anything changed (then one ``dates_changed`` event says what, source "ehr").
    The assessment stage does the same for a batch in bulk (cases/sync.py, with ``take_ehr_dates``).
    """
    changed = take_ehr_dates(
        case, expected_discharge_at=expected_discharge_at, medically_ready_at=medically_ready_at, actor=actor
    )
    if not changed:
        return False
    case.updated_at = utcnow()
    session.add(case)
    record_event(session, case, actor=actor, kind=EventKind.dates_changed, data={**changed, "source": DateSource.ehr})
    return True


def set_dates_by_person(
    session: Session, case: Case, values: dict[str, datetime | None], *, actor: str, expected_version: int | None = None
) -> bool:
    """Set dates as typed by ``actor`` (source "person": the feed will not overwrite them).

    Clearing a date (None) hands it back to the feed: source and author are cleared too.
    """
    check_version("case", case.version, expected_version)
    _check_new_dates(session, case, values, utcnow())
    changed: dict[str, Any] = {}
    for field, value in values.items():
        diff = _set(case, field, value, DateSource.person if value else None, actor if value else None)
        if diff is not None:
            changed[field] = diff
    if not changed:
        return False
    case.updated_at = utcnow()
    session.add(case)
    record_event(
        session, case, actor=actor, kind=EventKind.dates_changed, data={**changed, "source": DateSource.person}
    )
    return True


def _check_new_dates(session: Session, case: Case, values: dict[str, datetime | None], now: datetime) -> None:
    """InvalidInput naming the first date that is new and out of bounds (a date kept as stored passes)."""
    day_of_admission: datetime | None = None
    for field, value in values.items():
        if field not in DATES:
            raise TypeError(f"not a readiness date: {field}")
        if value is None or value == getattr(case, field):
            continue
        if value.tzinfo is None:
            raise InvalidInput(("body", field), "give a time zone (e.g. 2026-12-01T09:00:00Z)")
        problem = out_of_years(value) or too_far(value, now, before=None, after=READY_AFTER)
        day_of_admission = day_of_admission or _day_of_admission(session, case, now)
        if problem is None and day_of_admission is not None and value < day_of_admission:
            problem = f"no earlier than the day of admission ({day_of_admission.date().isoformat()})"
        if problem is not None:
            raise InvalidInput(("body", field), f"{field}: {problem}")


def _day_of_admission(session: Session, case: Case, now: datetime) -> datetime | None:
    """Midnight of the day of admission in the hospital's time zone; None while the stay has no start,
    or starts after now (a planned admission, or an EHR clock ahead of ours: nothing to compare with)."""
    stay = get_encounter(session, case.source_id, case.encounter_fhir_id)
    if stay is None or stay.period_start is None or stay.period_start > now:
        return None
    source = session.get(Source, case.source_id)
    zone = ZoneInfo(source.timezone if source is not None else "UTC")
    day = stay.period_start.astimezone(zone).date()
    return datetime.combine(day, time(0), tzinfo=zone)


class ReadyDates(Protocol):
    """What the delay is counted from: a case, or a row of its two dates."""

    @property
    def medically_ready_at(self) -> datetime | None: ...

    @property
    def actual_discharge_at(self) -> datetime | None: ...


def bed_days_lost(case: ReadyDates, now: datetime | None = None) -> float | None:
    """Days in a bed after being medically ready: to the discharge, or to now while still in."""
    if case.medically_ready_at is None:
        return None
    end = case.actual_discharge_at or now or utcnow()
    return round(max((end - case.medically_ready_at).total_seconds(), 0) / 86400, 1)
