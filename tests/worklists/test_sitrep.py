"""The daily situation report on a fixture with known answers, on SQLite and PostgreSQL.

Hospital "city" keeps Moscow time (UTC+3): the report for Thursday 2026-12-03 takes its census at
midnight local, 2026-12-03 21:00 UTC, and "that day" runs from 2026-12-02 21:00 UTC.

Patients (medically ready / left, UTC; open barriers and handoff at the census):

- P1 ready 11-20 12:00 (13 days); barriers awaiting_placement and documents; social_home referred
- P2 ready 11-01 12:00 (32 days); its funding barrier ended 11-30; its relatives handoff cancelled
- P3 ready 12-03 20:00; a housing barrier and a home-care handoff only from 12-04
- P4 ready 12-03 22:00: after the census
- P5 ready 11-25, left 12-03 10:00 with a completed gerontology_centre handoff
- P6 ready 11-28, left 12-03 22:00 (after the census); awaiting_care_package; home_with_care scheduled
- P7 left 12-02 22:00 UTC (01:00 local on the day), the EHR's destination "home"
- P8 left 12-02 20:00 UTC (23:00 local the day before)
- P9 ready 11-20, its case closed 12-01
- P10 left 12-03 12:00, nothing recorded
- N1 at another hospital, ready 11-20, still in
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from discharge_bridge.cases.handoffs.models import DestinationType, Handoff, HandoffStatus
from discharge_bridge.cases.models import Barrier, BarrierCode, Case, CaseStatus
from discharge_bridge.db import session_scope
from discharge_bridge.sources.models import Source
from discharge_bridge.worklists.sitrep import NONE_RECORDED, REASONS, SitRep, sitrep
from tests.support.factories import flagged_case, make_source

pytestmark = pytest.mark.clock
DAY = date(2026, 12, 3)


def at(month: int, day: int, hour: int = 0) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def _patient(
    session: Session, source: int, name: str, *, ready: datetime | None = None, left: datetime | None = None
) -> Case:
    case = flagged_case(session, source, f"enc-{name}", f"p-{name}")
    case.medically_ready_at, case.actual_discharge_at = ready, left
    session.add(case)
    session.flush()
    return case


def _barrier(session: Session, case: Case, code: BarrierCode, start: datetime, end: datetime | None = None) -> None:
    assert case.id is not None
    session.add(Barrier(case_id=case.id, code=code, started_at=start, ended_at=end))


def _handoff(session: Session, case: Case, to: DestinationType, status: HandoffStatus, proposed: datetime) -> None:
    assert case.id is not None
    row = Handoff(case_id=case.id, destination_type=to, status=status, proposed_at=proposed)
    if status == HandoffStatus.cancelled:
        row.cancelled_at = proposed + timedelta(days=5)
    if status == HandoffStatus.completed:
        row.completed_at = at(12, 3, 9)
    session.add(row)


@pytest.fixture
def hospital(engine: Engine) -> int:
    with session_scope(engine) as session:
        city, north = make_source(session, "city"), make_source(session, "north")
        city.timezone = "Europe/Moscow"
        session.add(city)
        assert city.id is not None and north.id is not None
        c = city.id
        p1 = _patient(session, c, "P1", ready=at(11, 20, 12))
        _barrier(session, p1, BarrierCode.awaiting_placement, at(11, 21))
        _barrier(session, p1, BarrierCode.documents, at(11, 22))
        _handoff(session, p1, DestinationType.social_home, HandoffStatus.referred, at(11, 25))
        p2 = _patient(session, c, "P2", ready=at(11, 1, 12))
        _barrier(session, p2, BarrierCode.funding, at(11, 5), at(11, 30))
        _handoff(session, p2, DestinationType.relatives, HandoffStatus.cancelled, at(11, 10))
        p3 = _patient(session, c, "P3", ready=at(12, 3, 20))
        _barrier(session, p3, BarrierCode.housing, at(12, 4, 10))
        _handoff(session, p3, DestinationType.home_with_care, HandoffStatus.proposed, at(12, 4, 10))
        _patient(session, c, "P4", ready=at(12, 3, 22))
        p5 = _patient(session, c, "P5", ready=at(11, 25), left=at(12, 3, 10))
        _handoff(session, p5, DestinationType.gerontology_centre, HandoffStatus.completed, at(11, 26))
        p6 = _patient(session, c, "P6", ready=at(11, 28), left=at(12, 3, 22))
        _barrier(session, p6, BarrierCode.awaiting_care_package, at(11, 29))
        _handoff(session, p6, DestinationType.home_with_care, HandoffStatus.scheduled, at(11, 29))
        p7 = _patient(session, c, "P7", left=at(12, 2, 22))
        p7.discharge_destination = "home"
        session.add(p7)
        _patient(session, c, "P8", left=at(12, 2, 20))
        p9 = _patient(session, c, "P9", ready=at(11, 20))
        p9.status, p9.closed_at = CaseStatus.closed, at(12, 1)
        session.add(p9)
        _patient(session, c, "P10", left=at(12, 3, 12))
        _patient(session, north.id, "N1", ready=at(11, 20))
        return c


def _report(engine: Engine, source_id: int, day: date = DAY) -> SitRep:
    with session_scope(engine) as session:
        source = session.exec(select(Source).where(Source.id == source_id)).one()
        return sitrep(session, source, day)


def test_census_at_local_midnight(engine: Engine, hospital: int) -> None:
    report = _report(engine, hospital)
    assert report.census_at == at(12, 3, 21)
    assert (report.source, report.hospital, report.day) == ("city", "City Hospital", DAY)


def test_ready_not_discharged(engine: Engine, hospital: int) -> None:
    # P1, P2, P3 (ready an hour before the census) and P6 (left after it); not P4 (ready after), P9
    # (its case closed), the discharged, nor the other hospital's patient.
    assert _report(engine, hospital).ready_not_discharged == 4


def test_by_delay_reason(engine: Engine, hospital: int) -> None:
    report = _report(engine, hospital)
    assert list(report.by_reason) == list(REASONS)
    assert {k: v for k, v in report.by_reason.items() if v} == {
        "awaiting_placement": 1,  # P1 counts under each of its two barriers
        "documents": 1,
        "awaiting_care_package": 1,
        NONE_RECORDED: 2,  # P2 (its barrier ended before), P3 (its barrier starts after)
    }


def test_by_destination(engine: Engine, hospital: int) -> None:
    assert _report(engine, hospital).by_destination == {
        "home_with_care": 1,  # P6's scheduled handoff; P3's is proposed after the census
        "not_arranged": 2,  # P2 (its handoff was cancelled), P3
        "social_home": 1,
    }


def test_long_delays(engine: Engine, hospital: int) -> None:
    report = _report(engine, hospital)
    assert (report.delayed_7_plus, report.delayed_21_plus) == (2, 1)  # P1 13 days, P2 32 days


def test_discharged_that_day(engine: Engine, hospital: int) -> None:
    report = _report(engine, hospital)
    # P7 left at 01:00 local on the day, P8 the evening before; P6 after midnight local.
    assert report.discharged == 3
    assert report.discharged_by_destination == {"gerontology_centre": 1, "home": 1, "not_recorded": 1}


def test_another_day(engine: Engine, hospital: int) -> None:
    report = _report(engine, hospital, date(2026, 11, 15))
    assert report.ready_not_discharged == 1  # only P2 was ready by then
    assert report.by_reason["funding"] == 1
    assert report.by_destination == {"not_arranged": 1}  # its handoff was cancelled on 11-15 00:00 UTC
    assert report.discharged == 0
