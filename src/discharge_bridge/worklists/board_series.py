"""The bed board's two charts, week by week: the delay from medically ready to discharge (and who
still waits), and the handoffs proposed per destination. They read cases, not beds: a discharged
patient's delay belongs to the week they left."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_
from sqlmodel import Session, col, or_, select

from discharge_bridge.cases.handoffs.models import DestinationType, Handoff
from discharge_bridge.cases.models import Case
from discharge_bridge.cases.readiness import bed_days_lost
from discharge_bridge.cases.repository import scoped
from discharge_bridge.ingest.models import EncounterSnapshot
from discharge_bridge.sources.models import Source
from discharge_bridge.worklists.beds import BoardFilter


@dataclass(frozen=True)
class DelayWeek:
    week_start: date  # a Monday, in the hospital's time zone
    discharged: int  # discharges this week that had a medically-ready date
    median_days: float | None
    mean_days: float | None
    waiting: int  # medically ready and still in a bed at the end of the week (now, for this week)


@dataclass(frozen=True)
class HandoffWeek:
    week_start: date
    counts: dict[DestinationType, int]  # handoffs proposed this week, per destination


def week_starts(now: datetime, tz: str, weeks: int) -> list[datetime]:
    """The Mondays 00:00 local (as UTC instants) of the last ``weeks`` weeks, this week last."""
    zone = ZoneInfo(tz)
    today = now.astimezone(zone).date()
    monday = today - timedelta(days=today.weekday())
    days = [monday - timedelta(weeks=n) for n in range(weeks - 1, -1, -1)]
    return [datetime(d.year, d.month, d.day, tzinfo=zone).astimezone(UTC) for d in days]


def _week_index(starts: list[datetime], at: datetime) -> int | None:
    if at < starts[0]:
        return None
    for index in range(len(starts) - 1, -1, -1):
        if at >= starts[index]:
            return index
    return None


def _ward_filter(query: Any, flt: BoardFilter) -> Any:
    if flt.ward:
        query = query.outerjoin(
            EncounterSnapshot,
            and_(
                col(EncounterSnapshot.source_id) == Case.source_id,
                col(EncounterSnapshot.fhir_id) == Case.encounter_fhir_id,
            ),
        ).where(col(EncounterSnapshot.ward) == flt.ward)
    return scoped(query, flt.source_ids)


def delay_series(session: Session, flt: BoardFilter, *, now: datetime, tz: str, weeks: int = 12) -> list[DelayWeek]:
    """Per week: the delay from medically ready to discharge of that week's discharges, and who still waits."""
    starts = week_starts(now, tz, weeks)
    window_start = starts[0]
    dates = (col(Case.medically_ready_at), col(Case.actual_discharge_at), col(Case.closed_at))
    query = select(*dates).where(
        col(Case.medically_ready_at).is_not(None),
        col(Case.medically_ready_at) <= now,
        or_(col(Case.actual_discharge_at).is_(None), col(Case.actual_discharge_at) >= window_start),
        or_(col(Case.closed_at).is_(None), col(Case.closed_at) >= window_start),
    )
    cases = list(session.execute(_ward_filter(query, flt)))  # rows of dates: 20,000 at city scale
    delays: list[list[float]] = [[] for _ in starts]
    for c in cases:
        if c.actual_discharge_at is not None:
            index = _week_index(starts, c.actual_discharge_at)
            lost = bed_days_lost(c, now)
            if index is not None and lost is not None:
                delays[index].append(lost)
    series = []
    for index, start in enumerate(starts):
        point = min(starts[index + 1], now) if index + 1 < len(starts) else now
        waiting = sum(1 for c in cases if _waiting_at(c, point))
        values = delays[index]
        series.append(
            DelayWeek(
                week_start=start.astimezone(ZoneInfo(tz)).date(),
                discharged=len(values),
                median_days=round(statistics.median(values), 1) if values else None,
                mean_days=round(statistics.fmean(values), 1) if values else None,
                waiting=waiting,
            )
        )
    return series


def _waiting_at(c: Any, point: datetime) -> bool:
    """Medically ready by ``point`` and not yet gone (discharged, or the case closed another way)."""
    if c.medically_ready_at is None or c.medically_ready_at > point:
        return False
    left = c.actual_discharge_at or c.closed_at
    return left is None or left > point


def handoff_series(session: Session, flt: BoardFilter, *, now: datetime, tz: str, weeks: int = 12) -> list[HandoffWeek]:
    """Handoffs proposed per week, by destination type (declined and cancelled ones included: they were tried)."""
    starts = week_starts(now, tz, weeks)
    query = (
        select(Handoff.destination_type, Handoff.proposed_at)
        .join(Case, col(Case.id) == Handoff.case_id)
        .where(col(Handoff.proposed_at) >= starts[0], col(Handoff.proposed_at) <= now)
    )
    counts: list[dict[DestinationType, int]] = [dict.fromkeys(DestinationType, 0) for _ in starts]
    for destination, at in session.exec(_ward_filter(query, flt)):
        index = _week_index(starts, at)
        if index is not None:
            counts[index][DestinationType(destination)] += 1
    zone = ZoneInfo(tz)
    return [HandoffWeek(s.astimezone(zone).date(), c) for s, c in zip(starts, counts, strict=True)]


def board_timezone(sources: Iterable[Source]) -> str:
    """The zone weeks are counted in: the hospitals' shared zone, else UTC."""
    zones = {s.timezone for s in sources}
    return zones.pop() if len(zones) == 1 else "UTC"
