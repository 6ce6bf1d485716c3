"""The bed board's projection and its chart series, on SQLite and PostgreSQL.

One hospital with a patient medically ready three days ago (an open barrier, a handoff under way),
one not yet ready, two discharged last week after waiting 3 and 5 days, one whose encounter
finished; a second hospital the caller may not see.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import time_machine
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from discharge_bridge.cases.barriers import add_barrier, update_barrier
from discharge_bridge.cases.discharge import record_discharge
from discharge_bridge.cases.handoffs.models import DestinationType, HandoffStatus
from discharge_bridge.cases.handoffs.service import create_handoff, update_handoff
from discharge_bridge.cases.models import BarrierCode, Case
from discharge_bridge.cases.readiness import set_dates_by_person
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.ingest.models import EncounterSnapshot
from discharge_bridge.worklists.board import BoardFilter, board, delay_series, handoff_series, week_starts
from tests.support.factories import flagged_case, make_source, put_encounter

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # a Wednesday
DAY = timedelta(days=1)


def _ready(session: Session, case: Case, at: datetime) -> None:
    set_dates_by_person(session, case, {"medically_ready_at": at}, actor="ward")


def _ward(session: Session, source_id: int, eid: str, ward: str) -> None:
    """Put the stored admission in ``ward`` (the fake EHR's encounters carry no location)."""
    enc = session.exec(
        select(EncounterSnapshot).where(EncounterSnapshot.source_id == source_id, EncounterSnapshot.fhir_id == eid)
    ).one()
    enc.ward, enc.bed = ward, f"{eid}-bed"
    session.add(enc)


def _discharged(session: Session, source_id: int, eid: str, ready: datetime, left: datetime) -> None:
    case = flagged_case(session, source_id, eid, f"p-{eid}")
    _ward(session, source_id, eid, "Therapy 3")
    _ready(session, case, ready)
    put_encounter(session, source_id, eid, f"p-{eid}", status="finished", end=left.isoformat())
    record_discharge(session, case, discharged_at=left, disposition_code=None)


def _seed(engine: Engine, settings: Settings) -> tuple[int, int]:
    with time_machine.travel(NOW - 15 * DAY, tick=False), session_scope(engine) as session:
        city = make_source(session, "city").id
        other = make_source(session, "other").id
        assert city is not None and other is not None
        ready = flagged_case(session, city, "enc-ready", "p-ready")
        _ward(session, city, "enc-ready", "Therapy 3")
        waiting = flagged_case(session, city, "enc-wait", "p-wait")
        _ward(session, city, "enc-wait", "Surgery 2")
        gone = flagged_case(session, city, "enc-gone", "p-gone")
        put_encounter(session, city, "enc-gone", "p-gone", status="finished", end="2026-11-20T10:00:00+00:00")
        foreign = flagged_case(session, other, "enc-foreign", "p-foreign")
        _ready(session, foreign, NOW - 9 * DAY)
        assert gone.id and ready.id and waiting.id
        ready_id, waiting_id = ready.id, waiting.id
    with time_machine.travel(NOW - 15 * DAY, tick=False), session_scope(engine) as session:
        ready = session.get(Case, ready_id)
        assert ready is not None
        tried = create_handoff(
            session, ready, actor="anna", destination_type=DestinationType.relatives, mappings_dir=settings.mappings_dir
        )
        update_handoff(session, ready, tried, actor="anna", expected_version=None, status=HandoffStatus.cancelled)
        old = add_barrier(session, ready, actor="boris", code=BarrierCode.documents, started_at=NOW - 14 * DAY)
        update_barrier(session, ready, old, actor="boris", ended_at=NOW - 10 * DAY)
    with time_machine.travel(NOW - 5 * DAY, tick=False), session_scope(engine) as session:
        ready = session.get(Case, ready_id)
        assert ready is not None
        _ready(session, ready, NOW - 3 * DAY)
        add_barrier(session, ready, actor="boris", code=BarrierCode.housing, owner="social worker")
        handoff = create_handoff(
            session,
            ready,
            actor="anna",
            destination_type=DestinationType.social_home,
            organisation="Home No. 4",
            mappings_dir=settings.mappings_dir,
        )
        update_handoff(session, ready, handoff, actor="anna", expected_version=None, status=HandoffStatus.referred)
        waiting = session.get(Case, waiting_id)
        assert waiting is not None
        set_dates_by_person(session, waiting, {"expected_discharge_at": NOW + DAY}, actor="ward")
        _discharged(
            session, city, "enc-d1", datetime(2026, 11, 16, 10, tzinfo=UTC), datetime(2026, 11, 19, 10, tzinfo=UTC)
        )
        _discharged(
            session, city, "enc-d2", datetime(2026, 11, 17, 10, tzinfo=UTC), datetime(2026, 11, 22, 10, tzinfo=UTC)
        )
    return city, other


def test_the_board_lists_patients_in_a_bed_ready_first_with_delays(engine: Engine, settings: Settings) -> None:
    city, _ = _seed(engine, settings)
    with session_scope(engine) as session:
        result = board(session, BoardFilter(source_ids=[city]), now=NOW)
    assert [r.encounter for r in result.rows] == ["enc-ready", "enc-wait"]  # discharged and finished are gone
    ready, waiting = result.rows
    assert ready.days_delayed == 3.0 and ready.medically_ready_source == "person" and ready.ward == "Therapy 3"
    assert [(b.code, b.owner, b.delayed_days) for b in ready.barriers] == [("housing", "social worker", 5.0)]
    assert ready.handoff is not None
    assert (ready.handoff.destination_type, ready.handoff.status) == ("social_home", "referred")
    assert ready.handoff.status_at == NOW - 5 * DAY and ready.handoff.organisation == "Home No. 4"
    assert waiting.days_delayed is None and waiting.handoff is None and waiting.barriers == []
    assert waiting.expected_discharge_at == NOW + DAY and not waiting.past_expected
    assert (result.totals.in_bed, result.totals.ready_not_discharged, result.totals.bed_days_lost) == (2, 1, 3.0)
    assert result.wards == ["Surgery 2", "Therapy 3"]


def test_the_board_filters_by_ward_and_keeps_to_the_callers_hospitals(engine: Engine, settings: Settings) -> None:
    city, other = _seed(engine, settings)
    with session_scope(engine) as session:
        surgery = board(session, BoardFilter(source_ids=[city], ward="Surgery 2"), now=NOW)
        everyone = board(session, BoardFilter(source_ids=None), now=NOW)
        foreign = board(session, BoardFilter(source_ids=[other]), now=NOW)
        limited = board(session, BoardFilter(source_ids=[city]), now=NOW, limit=1)
    assert [r.encounter for r in surgery.rows] == ["enc-wait"] and surgery.totals.in_bed == 1
    assert surgery.wards == ["Surgery 2", "Therapy 3"]  # the ward list ignores the ward filter
    assert surgery.totals.ready_not_discharged == 0 and surgery.totals.bed_days_lost == 0
    # Across both hospitals the foreign patient (ready 9 days) comes first: the longest wait leads.
    assert [r.encounter for r in everyone.rows] == ["enc-foreign", "enc-ready", "enc-wait"]
    assert everyone.totals.bed_days_lost == 12.0
    assert [r.encounter for r in foreign.rows] == ["enc-foreign"]
    assert [r.encounter for r in limited.rows] == ["enc-ready"] and limited.totals.in_bed == 2


def test_weeks_start_on_the_local_monday() -> None:
    starts = week_starts(NOW, "Europe/Moscow", 3)
    assert starts[-1] == datetime(2026, 11, 22, 21, tzinfo=UTC)  # Monday 23 Nov, 00:00 in Moscow
    assert [s.date() for s in starts[:2]] == [date(2026, 11, 8), date(2026, 11, 15)]


def test_delay_series_per_week(engine: Engine, settings: Settings) -> None:
    city, _ = _seed(engine, settings)
    with session_scope(engine) as session:
        weeks = delay_series(session, BoardFilter(source_ids=[city]), now=NOW, tz="UTC", weeks=3)
        surgery = delay_series(session, BoardFilter(source_ids=[city], ward="Surgery 2"), now=NOW, tz="UTC", weeks=3)
    assert [w.week_start for w in weeks] == [date(2026, 11, 9), date(2026, 11, 16), date(2026, 11, 23)]
    last_week = weeks[1]
    assert (last_week.discharged, last_week.median_days, last_week.mean_days) == (2, 4.0, 4.0)
    # At the end of last week (Mon 23 Nov 00:00) enc-ready was ready (since 22 Nov) and still in a bed.
    assert [w.waiting for w in weeks] == [0, 1, 1]
    assert weeks[0].median_days is None and weeks[2].discharged == 0
    assert all(w.discharged == 0 and w.waiting == 0 for w in surgery)


def test_handoff_series_counts_proposals_per_week_and_destination(engine: Engine, settings: Settings) -> None:
    city, other = _seed(engine, settings)
    with session_scope(engine) as session:
        weeks = handoff_series(session, BoardFilter(source_ids=[city]), now=NOW, tz="UTC", weeks=3)
        foreign = handoff_series(session, BoardFilter(source_ids=[other]), now=NOW, tz="UTC", weeks=3)
    assert weeks[0].counts[DestinationType.relatives] == 1  # proposed 10 Nov, then cancelled: still counted
    assert weeks[1].counts[DestinationType.social_home] == 1  # proposed 20 Nov
    assert sum(sum(w.counts.values()) for w in weeks) == 2
    assert sum(sum(w.counts.values()) for w in foreign) == 0
