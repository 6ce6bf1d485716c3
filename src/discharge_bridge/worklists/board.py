"""The bed manager's board: who is still in a bed, who is medically ready, and how long they wait.

A read-only projection over cases, their admissions, open barriers and handoffs, scoped to the
hospitals the caller may see. Delays use the case rule (``cases.readiness.bed_days_lost``): from
medically ready to discharge, or to now while the patient is still in the bed.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case as when
from sqlalchemy import func
from sqlmodel import Session, and_, col, or_, select

from discharge_bridge.cases.barriers import delayed_days
from discharge_bridge.cases.handoffs.models import DestinationType, Handoff, HandoffStatus
from discharge_bridge.cases.models import Barrier, BarrierCode, Case, CaseStatus, DateSource
from discharge_bridge.cases.readiness import bed_days_lost
from discharge_bridge.cases.repository import scoped
from discharge_bridge.ingest.models import EncounterSnapshot
from discharge_bridge.sources.models import Source
from discharge_bridge.sources.service import SourceNotFound, list_sources

# An encounter in one of these states has left the bed even if the case has not caught up yet.
LEFT_BED = ("finished", "cancelled", "entered-in-error")
INACTIVE_HANDOFF = (HandoffStatus.declined, HandoffStatus.cancelled)
_CHUNK = 500  # ids per IN (...) list


@dataclass(frozen=True)
class BoardFilter:
    """``source_ids``: the caller's scope further narrowed by the hospital filter (None = all)."""

    source_ids: list[int] | None = None
    ward: str | None = None


def board_filter(
    session: Session, source_ids: list[int] | None, hospital: str | None, ward: str | None
) -> tuple[BoardFilter, list[Source], Source | None]:
    """The filter for the caller's hospitals, with those hospitals and the one chosen (if any);
    a hospital outside them is SourceNotFound, as if it did not exist."""
    sources = list_sources(session, source_ids=source_ids)
    chosen = None
    if hospital:
        chosen = next((s for s in sources if s.name == hospital), None)
        if chosen is None:
            raise SourceNotFound(hospital)
    ids = [chosen.id] if chosen and chosen.id is not None else source_ids
    return BoardFilter(source_ids=ids, ward=ward or None), sources, chosen


@dataclass(frozen=True)
class BarrierLine:
    code: BarrierCode
    owner: str | None
    started_at: datetime
    delayed_days: float


@dataclass(frozen=True)
class HandoffLine:
    destination_type: DestinationType
    organisation: str | None
    status: HandoffStatus
    status_at: datetime | None  # when the handoff reached its current status


@dataclass(frozen=True)
class BoardRow:
    case_id: int
    source: str
    hospital: str
    timezone: str
    ward: str | None
    bed: str | None
    patient: str  # the FHIR id: the store holds no names
    encounter: str
    admitted_at: datetime | None
    medically_ready_at: datetime | None
    medically_ready_source: DateSource | None
    medically_ready_set_by: str | None
    expected_discharge_at: datetime | None
    expected_discharge_source: DateSource | None
    days_delayed: float | None  # bed-days lost so far; None while not medically ready
    past_expected: bool
    barriers: list[BarrierLine] = field(default_factory=list)
    handoff: HandoffLine | None = None


@dataclass(frozen=True)
class BoardTotals:
    in_bed: int
    ready_not_discharged: int
    bed_days_lost: float


@dataclass(frozen=True)
class Board:
    totals: BoardTotals
    rows: list[BoardRow]
    wards: list[str]  # for the ward filter: the wards of the filtered hospitals' board


def _in_bed(query: Any, flt: BoardFilter, *, with_ward: bool = True) -> Any:
    query = query.where(Case.status == CaseStatus.open, col(Case.actual_discharge_at).is_(None)).where(
        or_(
            col(EncounterSnapshot.id).is_(None),
            and_(col(EncounterSnapshot.period_end).is_(None), col(EncounterSnapshot.status).not_in(LEFT_BED)),
        )
    )
    if with_ward and flt.ward:
        query = query.where(EncounterSnapshot.ward == flt.ward)
    return scoped(query, flt.source_ids)


def _join_encounter(query: Any) -> Any:
    return query.outerjoin(
        EncounterSnapshot,
        and_(EncounterSnapshot.source_id == Case.source_id, EncounterSnapshot.fhir_id == Case.encounter_fhir_id),
    )


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def _open_barriers(session: Session, case_ids: list[int], now: datetime) -> dict[int, list[BarrierLine]]:
    found: dict[int, list[BarrierLine]] = defaultdict(list)
    for ids in _chunks(case_ids):
        query = (
            select(Barrier)
            .where(col(Barrier.case_id).in_(ids), col(Barrier.ended_at).is_(None))
            .order_by(col(Barrier.started_at), col(Barrier.id))
        )
        for b in session.exec(query):
            found[b.case_id].append(BarrierLine(b.code, b.owner, b.started_at, delayed_days(b, now)))
    return found


def _current_handoffs(session: Session, case_ids: list[int]) -> dict[int, HandoffLine]:
    """The most recent handoff of each case that is still under way (or done), not declined or cancelled."""
    found: dict[int, HandoffLine] = {}
    for ids in _chunks(case_ids):
        query = (
            select(Handoff)
            .where(col(Handoff.case_id).in_(ids), col(Handoff.status).not_in(INACTIVE_HANDOFF))
            .order_by(col(Handoff.proposed_at).desc(), col(Handoff.id).desc())
        )
        for h in session.exec(query):
            if h.case_id not in found:
                status_at = getattr(h, f"{h.status}_at", None)
                found[h.case_id] = HandoffLine(h.destination_type, h.organisation, h.status, status_at)
    return found


def board(session: Session, flt: BoardFilter, *, now: datetime, limit: int | None = 500) -> Board:
    """Patients still in a bed, medically ready ones first (longest waiting first), then by expected discharge."""
    # Columns, not the snapshot rows: those carry the raw FHIR resource, which the board never shows.
    columns: list[Any] = [Case, EncounterSnapshot.ward, EncounterSnapshot.bed, EncounterSnapshot.period_start]
    columns += [Source.name, Source.hospital, Source.timezone]
    base = _in_bed(_join_encounter(select(*columns)), flt).join(Source, col(Source.id) == Case.source_id)
    not_ready = when((col(Case.medically_ready_at).is_(None), 1), else_=0)
    no_expected = when((col(Case.expected_discharge_at).is_(None), 1), else_=0)
    ordered = base.order_by(
        not_ready,
        col(Case.medically_ready_at),
        no_expected,
        col(Case.expected_discharge_at),
        col(EncounterSnapshot.ward),
        col(EncounterSnapshot.bed),
        col(Case.id),
    )
    if limit is not None:
        ordered = ordered.limit(limit)
    picked = list(session.exec(ordered))
    case_ids = [row[0].id for row in picked if row[0].id is not None]
    barriers = _open_barriers(session, case_ids, now)
    handoffs = _current_handoffs(session, case_ids)
    rows = [_row(row, now, barriers.get(row[0].id or 0, []), handoffs.get(row[0].id or 0)) for row in picked]
    return Board(_totals(session, flt, now), rows, _wards(session, flt))


def _row(row: Any, now: datetime, barriers: list[BarrierLine], handoff: HandoffLine | None) -> BoardRow:
    c, ward, bed, admitted_at, source, hospital, timezone = row
    assert c.id is not None
    return BoardRow(
        case_id=c.id,
        source=source,
        hospital=hospital,
        timezone=timezone,
        ward=ward,
        bed=bed,
        patient=c.patient_fhir_id,
        encounter=c.encounter_fhir_id,
        admitted_at=admitted_at,
        medically_ready_at=c.medically_ready_at,
        medically_ready_source=c.medically_ready_source,
        medically_ready_set_by=c.medically_ready_set_by,
        expected_discharge_at=c.expected_discharge_at,
        expected_discharge_source=c.expected_discharge_source,
        days_delayed=bed_days_lost(c, now),
        past_expected=c.expected_discharge_at is not None and c.expected_discharge_at < now,
        barriers=barriers,
        handoff=handoff,
    )


def _totals(session: Session, flt: BoardFilter, now: datetime) -> BoardTotals:
    in_bed = session.exec(_in_bed(_join_encounter(select(func.count()).select_from(Case)), flt)).one()
    ready_query = _in_bed(_join_encounter(select(Case.medically_ready_at)), flt).where(
        col(Case.medically_ready_at).is_not(None)
    )
    ready = [at for at in session.exec(ready_query) if at is not None]
    lost = sum(max((now - at).total_seconds(), 0) for at in ready) / 86400
    return BoardTotals(in_bed=int(in_bed), ready_not_discharged=len(ready), bed_days_lost=round(lost, 1))


def _wards(session: Session, flt: BoardFilter) -> list[str]:
    query = _in_bed(_join_encounter(select(EncounterSnapshot.ward).select_from(Case)), flt, with_ward=False)
    return sorted({w for w in session.exec(query.distinct()) if w})


# -- chart series ---------------------------------------------------------------------------------


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
        query = _join_encounter(query).where(EncounterSnapshot.ward == flt.ward)
    return scoped(query, flt.source_ids)


def delay_series(session: Session, flt: BoardFilter, *, now: datetime, tz: str, weeks: int = 12) -> list[DelayWeek]:
    """Per week: the delay from medically ready to discharge of that week's discharges, and who still waits."""
    starts = week_starts(now, tz, weeks)
    window_start = starts[0]
    query = select(Case).where(
        col(Case.medically_ready_at).is_not(None),
        col(Case.medically_ready_at) <= now,
        or_(col(Case.actual_discharge_at).is_(None), col(Case.actual_discharge_at) >= window_start),
        or_(col(Case.closed_at).is_(None), col(Case.closed_at) >= window_start),
    )
    cases = list(session.exec(_ward_filter(query, flt)))
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


def _waiting_at(c: Case, point: datetime) -> bool:
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
