"""The city's figures on a fixture with known answers (tests/worklists/city_fixture.py), one test per
figure, each grouping checked, on SQLite and PostgreSQL (the ``engine`` fixture runs both)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from discharge_bridge.cases.delivered.models import ServiceDelivered
from discharge_bridge.cases.models import Case, CaseEvent
from discharge_bridge.cases.readiness import bed_days_lost
from discharge_bridge.cases.referrals.models import Referral
from discharge_bridge.config import Settings
from discharge_bridge.db import make_engine, session_scope
from discharge_bridge.demo import prepare_demo
from discharge_bridge.demo.activity import STORIES
from discharge_bridge.sources.models import Source
from discharge_bridge.worklists.city import (
    BedDays,
    CityFigures,
    Delivered,
    Duration,
    Grouping,
    People,
    ReferralCount,
    ResponseTime,
    city_figures,
)
from discharge_bridge.worklists.periods import InvalidPeriod, Period
from discharge_bridge.worklists.sitrep import sitrep
from tests.worklists.city_fixture import NOW, PERIOD, City, at, seed_city

pytestmark = pytest.mark.clock


@pytest.fixture
def city(engine: Engine) -> City:
    return seed_city(engine)


def _figures(engine: Engine, city: City, grouping: Grouping, period: Period = PERIOD) -> CityFigures:
    with session_scope(engine) as session:
        sources = [s for s in session.exec(select(Source)) if s.id in (city.city, city.north)]
        return city_figures(session, sources, period, grouping)


def _duration(figures: CityFigures, name: str) -> tuple[list[Duration], Duration, str]:
    found = {f.name: f for f in figures.durations}[name]
    return found.groups, found.total, found.unit


def test_flag_to_first_visit(engine: Engine, city: City) -> None:
    groups, total, unit = _duration(_figures(engine, city, Grouping.hospital), "flag_to_first_visit")
    assert unit == "hours"
    # A 2 h (the system's earlier assessment is not a visit), B 4 h (its first-visit task done before the
    # flag correction at 6 h), C not yet (a call to a relative is not a visit), D 8 h.
    assert total == Duration(None, 4, 3, 4.0, 8.0)
    assert groups == [Duration("city", 3, 2, 2.0, 4.0), Duration("north", 1, 1, 8.0, 8.0)]
    groups, _, _ = _duration(_figures(engine, city, Grouping.ward), "flag_to_first_visit")
    assert groups == [
        Duration("Surgery", 1, 1, 4.0, 4.0),
        Duration("Therapy", 2, 1, 2.0, 2.0),
        Duration("Ward 1", 1, 1, 8.0, 8.0),
    ]
    groups, _, _ = _duration(_figures(engine, city, Grouping.coordinator), "flag_to_first_visit")
    assert groups == [Duration("anna", 3, 2, 2.0, 8.0), Duration("boris", 1, 1, 4.0, 4.0)]
    groups, _, _ = _duration(_figures(engine, city, Grouping.week), "flag_to_first_visit")
    # B opened Sunday 22:00 UTC = Monday 01:00 in Moscow: its hospital's week W49, not UTC's W48.
    assert groups == [Duration("2026-W48", 1, 1, 2.0, 2.0), Duration("2026-W49", 3, 2, 4.0, 8.0)]


def test_flag_to_plan(engine: Engine, city: City) -> None:
    groups, total, unit = _duration(_figures(engine, city, Grouping.week), "flag_to_plan")
    assert unit == "hours"
    # A 5 h, B 10 h, C only the scheduler's task (not a plan), D 1 h; the opening tasks are the system's.
    assert total == Duration(None, 4, 3, 5.0, 10.0)
    assert groups == [Duration("2026-W48", 1, 1, 5.0, 5.0), Duration("2026-W49", 3, 2, 1.0, 10.0)]
    groups, _, _ = _duration(_figures(engine, city, Grouping.hospital), "flag_to_plan")
    assert groups == [Duration("city", 3, 2, 5.0, 10.0), Duration("north", 1, 1, 1.0, 1.0)]


def test_flag_to_handoff(engine: Engine, city: City) -> None:
    groups, total, unit = _duration(_figures(engine, city, Grouping.coordinator), "flag_to_handoff")
    assert unit == "days"
    assert total == Duration(None, 4, 2, 3.0, 5.0)  # A 3 days, D 5 days; B and C not yet
    assert groups == [Duration("anna", 3, 2, 3.0, 5.0), Duration("boris", 1, 0, None, None)]
    groups, _, _ = _duration(_figures(engine, city, Grouping.ward), "flag_to_handoff")
    assert groups == [
        Duration("Surgery", 1, 0, None, None),
        Duration("Therapy", 2, 1, 3.0, 3.0),
        Duration("Ward 1", 1, 1, 5.0, 5.0),
    ]


def test_ready_to_discharge_delay(engine: Engine, city: City) -> None:
    groups, total, unit = _duration(_figures(engine, city, Grouping.hospital), "ready_to_discharge")
    assert unit == "days"
    # Discharged in the period with a ready date: A 2, C 1, D 4, E 5 (opened before the period), F 0
    # (ready after it left: never below zero); G had no ready date.
    assert total == Duration(None, 5, 5, 2.0, 5.0)
    assert groups == [Duration("city", 4, 4, 1.0, 5.0), Duration("north", 1, 1, 4.0, 4.0)]
    groups, _, _ = _duration(_figures(engine, city, Grouping.week), "ready_to_discharge")
    assert groups == [Duration("2026-W48", 2, 2, 2.0, 5.0), Duration("2026-W49", 3, 3, 1.0, 4.0)]


def test_bed_days_lost(engine: Engine, city: City) -> None:
    figures = _figures(engine, city, Grouping.hospital)
    assert figures.bed_days_total == BedDays(None, 5, 12.0)
    assert figures.bed_days == [BedDays("city", 4, 8.0), BedDays("north", 1, 4.0)]
    with Session(engine) as session:  # the same definition as a case's own bed-days lost
        left = [
            c
            for c in session.exec(select(Case).where(Case.source_id.in_([city.city, city.north])))  # type: ignore[attr-defined]
            if c.actual_discharge_at is not None and date(2026, 11, 23) <= c.actual_discharge_at.date() <= PERIOD.end
        ]
        assert sum(bed_days_lost(c, NOW) or 0 for c in left) == 12.0
    coordinators = _figures(engine, city, Grouping.coordinator).bed_days
    assert coordinators == [BedDays("anna", 4, 7.0), BedDays("boris", 1, 5.0)]


def test_referrals_by_category_and_outcome(engine: Engine, city: City) -> None:
    figures = _figures(engine, city, Grouping.hospital)
    # Requested in the period at these hospitals: not the one before it, not the other hospital's.
    assert figures.referrals == [
        ReferralCount("city", "charity", "open", 1),
        ReferralCount("city", "charity", "rejected", 1),
        ReferralCount("city", "home_care", "completed", 1),
        ReferralCount("north", "home_care", "open", 1),
    ]
    weeks = _figures(engine, city, Grouping.week).referrals
    assert weeks == [
        ReferralCount("2026-W48", "home_care", "completed", 1),
        ReferralCount("2026-W49", "charity", "open", 1),
        ReferralCount("2026-W49", "charity", "rejected", 1),
        ReferralCount("2026-W49", "home_care", "open", 1),
    ]


def test_receivers_response_time(engine: Engine, city: City) -> None:
    responses = _figures(engine, city, Grouping.hospital).responses
    assert responses == [
        ResponseTime("fund", "Helping Hand Fund", 2, 1, 24.0, 24.0),  # one rejected after a day, one unanswered
        ResponseTime("homecare", "City Home Care", 2, 2, 2.0, 6.0),  # accepted after 6 h and 2 h
    ]


def test_services_delivered(engine: Engine, city: City) -> None:
    figures = _figures(engine, city, Grouping.coordinator)
    # Struck-out, before-the-period and other-hospital rows do not count; by who delivered them.
    assert figures.delivered == [
        Delivered("anna", "consultation", 2, 1),
        Delivered("boris", "document_filed", 1, 1),
        Delivered("petra", "psychologist_session", 1, 1),
    ]
    assert figures.people == [People("anna", 1), People("boris", 1), People("petra", 1)]
    assert figures.people_total == 3
    hospitals = _figures(engine, city, Grouping.hospital)
    assert hospitals.delivered == [
        Delivered("city", "consultation", 2, 1),
        Delivered("city", "document_filed", 1, 1),
        Delivered("north", "psychologist_session", 1, 1),
    ]
    assert hospitals.people == [People("city", 2), People("north", 1)]


def test_only_the_hospitals_given(engine: Engine, city: City) -> None:
    with session_scope(engine) as session:
        north = [s for s in session.exec(select(Source)) if s.id == city.north]
        figures = city_figures(session, north, PERIOD, Grouping.hospital)
    assert {g.group for f in figures.durations for g in f.groups} == {"north"}
    assert figures.people_total == 1
    assert [r.organisation for r in figures.responses] == ["homecare"]


def test_period_checked(engine: Engine, city: City) -> None:
    with pytest.raises(InvalidPeriod) as backwards:
        _figures(engine, city, Grouping.week, Period(date(2026, 12, 6), date(2026, 11, 23)))
    assert backwards.value.param == "to"
    with pytest.raises(InvalidPeriod):
        _figures(engine, city, Grouping.week, Period(date(2025, 1, 1), date(2026, 12, 6)))


def test_the_demo_figures_agree_with_a_direct_count(tmp_path: Path) -> None:
    """On the demo hospital (its stories of work in progress included), every figure's cohort is what a
    plain count of the rows finds, the groups add up to the whole, and bed-days are the cases' own."""
    settings, _ = prepare_demo(Settings(data_dir=tmp_path / "data"))
    engine = make_engine(settings.sqlalchemy_url)
    try:
        with session_scope(engine) as session:
            sources = list(session.exec(select(Source)))
            zone = ZoneInfo(sources[0].timezone)
            cases = list(session.exec(select(Case)))
            first = min(c.opened_at for c in cases).astimezone(zone).date()
            period = Period(first - timedelta(days=30), first + timedelta(days=300))

            def within(at: datetime | None) -> bool:
                return at is not None and period.start <= at.astimezone(zone).date() <= period.end

            opened = [c for c in cases if within(c.opened_at)]
            left = [c for c in cases if within(c.actual_discharge_at) and c.medically_ready_at is not None]
            referrals = [r for r in session.exec(select(Referral)) if within(r.requested_at)]
            services = [
                s for s in session.exec(select(ServiceDelivered)) if within(s.delivered_at) and s.cancelled_at is None
            ]
            for grouping in Grouping:
                figures = city_figures(session, sources, period, grouping)
                durations = {f.name: f for f in figures.durations}
                for name in ("flag_to_first_visit", "flag_to_plan", "flag_to_handoff"):
                    assert durations[name].total.cohort == len(opened), (grouping, name)
                    assert sum(g.cohort for g in durations[name].groups) == len(opened), (grouping, name)
                assert durations["ready_to_discharge"].total.cohort == len(left)
                assert sum(b.discharged for b in figures.bed_days) == len(left)
                lost = sum(bed_days_lost(c) or 0 for c in left)
                assert figures.bed_days_total.bed_days_lost == pytest.approx(lost, abs=0.05 * len(left) + 0.05)
                assert sum(r.count for r in figures.referrals) == len(referrals)
                assert sum(r.requested for r in figures.responses) == len(referrals)
                assert sum(d.count for d in figures.delivered) == len(services)
                people = {(c.source_id, c.patient_fhir_id) for c in cases for s in services if s.case_id == c.id}
                assert figures.people_total == len(people)
            assert opened, "the demo opens cases"
            seen = 0
            for day in {period.start + timedelta(days=n) for n in (0, 30, 31, 32, 60)}:
                report = sitrep(session, sources[0], day)
                census = report.census_at
                waiting = [
                    c
                    for c in cases
                    if c.source_id == sources[0].id
                    and c.medically_ready_at is not None
                    and c.medically_ready_at <= census
                    and not _left_by(c, census)
                ]
                assert report.ready_not_discharged == len(waiting)
                assert sum(report.by_destination.values()) == len(waiting)
                seen = max(seen, len(waiting))
            assert seen == len(STORIES)  # the demo's stories: medically ready and still in a bed today
    finally:
        engine.dispose()


def _left_by(case: Case, at: datetime) -> bool:
    gone = case.actual_discharge_at or case.closed_at
    return gone is not None and gone <= at


def test_the_same_question_shares_an_answer_for_a_while(engine: Engine, city: City) -> None:
    with session_scope(engine) as session:
        sources = [s for s in session.exec(select(Source)) if s.id in (city.city, city.north)]
        first = city_figures(session, sources, PERIOD, Grouping.hospital, figures_max_age=60)
        session.add(CaseEvent(case_id=city.cases["C"], at=at(12, 1, 9), actor="anna", kind="assessment_updated"))
    with session_scope(engine) as session:
        kept = city_figures(session, sources, PERIOD, Grouping.hospital, figures_max_age=60)
        fresh = city_figures(session, sources, PERIOD, Grouping.hospital)
    assert kept == first
    assert first.durations[0].total.count == 3 and fresh.durations[0].total.count == 4  # C seen after an hour
