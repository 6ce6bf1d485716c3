"""The daily situation report of one hospital, modelled on the NHS acute discharge SitRep.

For a local day, at the *census* (the end of that day, midnight in the hospital's time zone):

- the patients medically ready but not discharged: a case with a medically-ready date at or
  before the census that had not left by then (discharged, or its case closed another way: the
  bed board's definition, ``board_series._waiting_at``);
- those by delay reason: the case's barriers open at the census (``BarrierCode``); a patient with
  several counts under each, one with none under ``none_recorded``; the total counts each once;
- those by destination: the destination of the case's latest handoff still under way at the
  census (not declined or cancelled by then), else ``not_arranged``;
- of those, delayed 7 days or more and 21 days or more (census minus medically ready);
- the patients discharged that day, by destination: the completed handoff's destination, else the
  EHR's mapped discharge destination, else ``not_recorded``.

Counts only: the report names no one. Every figure is one grouped query.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlmodel import Session, col

from discharge_bridge.cases.handoffs.models import Handoff, HandoffStatus
from discharge_bridge.cases.models import Barrier, BarrierCode, Case
from discharge_bridge.sources.models import Source
from discharge_bridge.worklists.periods import local_midnight

NONE_RECORDED = "none_recorded"
NOT_ARRANGED = "not_arranged"
NOT_RECORDED = "not_recorded"
REASONS = (*(code.value for code in BarrierCode), NONE_RECORDED)
LONG_STAYS = (7, 21)  # days since medically ready: the SitRep's "delayed 7+" and "21+" columns


@dataclass(frozen=True)
class SitRep:
    source: str
    hospital: str
    day: date
    census_at: datetime  # UTC
    ready_not_discharged: int
    by_reason: dict[str, int]  # every reason, zero included, in REASONS order
    by_destination: dict[str, int]  # only the destinations that occur
    delayed_7_plus: int
    delayed_21_plus: int
    discharged: int
    discharged_by_destination: dict[str, int]


def _waiting(census: datetime, source_id: int) -> Any:
    left = func.coalesce(Case.actual_discharge_at, Case.closed_at)
    return and_(
        col(Case.source_id) == source_id,
        col(Case.medically_ready_at).is_not(None),
        col(Case.medically_ready_at) <= census,
        or_(left.is_(None), left > census),
    )


def _handoff_at(census: datetime) -> Any:
    """The destination of the case's latest handoff proposed by ``census`` and not ended by then."""
    ended = or_(
        and_(col(Handoff.declined_at).is_not(None), col(Handoff.declined_at) <= census),
        and_(col(Handoff.cancelled_at).is_not(None), col(Handoff.cancelled_at) <= census),
    )
    return (
        select(col(Handoff.destination_type))
        .where(col(Handoff.case_id) == Case.id, col(Handoff.proposed_at) <= census, ~ended)
        .order_by(col(Handoff.proposed_at).desc(), col(Handoff.id).desc())
        .limit(1)
        .correlate(Case)
        .scalar_subquery()
    )


def _completed_handoff() -> Any:
    return (
        select(col(Handoff.destination_type))
        .where(col(Handoff.case_id) == Case.id, col(Handoff.status) == HandoffStatus.completed.value)
        .order_by(col(Handoff.completed_at).desc(), col(Handoff.id).desc())
        .limit(1)
        .correlate(Case)
        .scalar_subquery()
    )


def sitrep(session: Session, source: Source, day: date) -> SitRep:
    """The report of ``source`` for its local ``day``."""
    assert source.id is not None
    start, census = local_midnight(day, source.timezone), local_midnight(day + timedelta(days=1), source.timezone)
    waiting = _waiting(census, source.id)
    ready = col(Case.medically_ready_at)
    counts = select(
        func.count(),
        func.sum(case((ready <= census - timedelta(days=LONG_STAYS[0]), 1), else_=0)),
        func.sum(case((ready <= census - timedelta(days=LONG_STAYS[1]), 1), else_=0)),
    ).where(waiting)
    total, seven, twenty_one = (int(n or 0) for n in session.execute(counts).one())

    open_barrier = and_(
        col(Barrier.started_at) <= census,
        or_(col(Barrier.ended_at).is_(None), col(Barrier.ended_at) > census),
    )
    reasons = (
        select(col(Barrier.code), func.count(func.distinct(Barrier.case_id)))
        .join(Case, col(Case.id) == Barrier.case_id)
        .where(waiting, open_barrier)
        .group_by(Barrier.code)
    )
    by_reason = dict.fromkeys(REASONS, 0)
    for code, n in session.execute(reasons):
        by_reason[str(code)] = int(n)
    with_barrier = (
        select(func.count(func.distinct(Barrier.case_id)))
        .join(Case, col(Case.id) == Barrier.case_id)
        .where(waiting, open_barrier)
    )
    by_reason[NONE_RECORDED] = total - int(session.execute(with_barrier).scalar_one())

    place = func.coalesce(_handoff_at(census), NOT_ARRANGED)
    destinations = select(place, func.count()).where(waiting).group_by(place)
    by_destination = {str(d): int(n) for d, n in session.execute(destinations)}

    left = col(Case.actual_discharge_at)
    gone = func.coalesce(_completed_handoff(), Case.discharge_destination, NOT_RECORDED)
    discharged_rows = (
        select(gone, func.count()).where(col(Case.source_id) == source.id, left >= start, left < census).group_by(gone)
    )
    discharged = {str(d): int(n) for d, n in session.execute(discharged_rows)}
    return SitRep(
        source=source.name,
        hospital=source.hospital,
        day=day,
        census_at=census,
        ready_not_discharged=total,
        by_reason=by_reason,
        by_destination=dict(sorted(by_destination.items())),
        delayed_7_plus=seven,
        delayed_21_plus=twenty_one,
        discharged=sum(discharged.values()),
        discharged_by_destination=dict(sorted(discharged.items())),
    )


CSV_HEADER = ["hospital", "date", "census_at", "section", "item", "patients"]


def sitrep_rows(report: SitRep) -> list[tuple[str, str, str, str, str, int]]:
    """The report as a long table: one row per number, in the order the SitRep reads."""
    head = (report.source, report.day.isoformat(), report.census_at.isoformat())
    rows = [(*head, "ready_not_discharged", "total", report.ready_not_discharged)]
    rows += [(*head, "delay_reason", code, n) for code, n in report.by_reason.items()]
    rows += [(*head, "destination", place, n) for place, n in report.by_destination.items()]
    rows += [
        (*head, "delayed", f"{LONG_STAYS[0]}_days_plus", report.delayed_7_plus),
        (*head, "delayed", f"{LONG_STAYS[1]}_days_plus", report.delayed_21_plus),
        (*head, "discharged", "total", report.discharged),
    ]
    rows += [(*head, "discharged_destination", place, n) for place, n in report.discharged_by_destination.items()]
    return rows
