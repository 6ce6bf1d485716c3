"""Discharge readiness: the expected discharge date and the medically-ready date, with provenance.

Each date remembers where it came from. A person's entry always wins: the EHR feed fills and
updates a date only while no person has set it (a known pitfall of bed tools is a nightly feed
erasing what the ward agreed in the morning).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from discharge_bridge.cases.errors import check_version
from discharge_bridge.cases.events import EventKind, record_event
from discharge_bridge.cases.models import Case, DateSource
from discharge_bridge.db import utcnow

DATES = ("expected_discharge_at", "medically_ready_at")
_PREFIX = {"expected_discharge_at": "expected_discharge", "medically_ready_at": "medically_ready"}


def _set(case: Case, field: str, value: datetime | None, source: DateSource | None, by: str | None) -> list[Any] | None:
    prefix = _PREFIX[field]
    old = (getattr(case, field), getattr(case, f"{prefix}_source"))
    if old == (value, source) and getattr(case, f"{prefix}_set_by") == by:
        return None
    setattr(case, field, value)
    setattr(case, f"{prefix}_source", source)
    setattr(case, f"{prefix}_set_by", by)
    return [old[0], value]


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
    """
    changed: dict[str, Any] = {}
    for field, value in (("expected_discharge_at", expected_discharge_at), ("medically_ready_at", medically_ready_at)):
        if value is None or getattr(case, f"{_PREFIX[field]}_source") == DateSource.person:
            continue
        diff = _set(case, field, value, DateSource.ehr, actor)
        if diff is not None:
            changed[field] = diff
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
    changed: dict[str, Any] = {}
    for field, value in values.items():
        if field not in DATES:
            raise TypeError(f"not a readiness date: {field}")
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


def bed_days_lost(case: Case, now: datetime | None = None) -> float | None:
    """Days in a bed after being medically ready: to the discharge, or to now while still in."""
    if case.medically_ready_at is None:
        return None
    end = case.actual_discharge_at or now or utcnow()
    return round(max((end - case.medically_ready_at).total_seconds(), 0) / 86400, 1)
