"""The bed board over every current inpatient, on SQLite and PostgreSQL, at a fixed clock.

Hospital "city" (Moscow time; Wednesday 25 November 2026, 15:00 there) has nine patients in a bed:

    Therapy 3  A  case, medically ready 3 days ago, handoff to a social home        delayed
               B  no flag, no case, the EHR plans the discharge for 17:00 today     today
               C  case, expected discharge on Saturday                              this week
               D  no flag, no case, no date                                         undated
               L  the ward leg of a stay whose parent Encounter is also in progress undated
    Surgery 2  E  case, medically ready at 12:00 today, handoff home with care      today
               F  case, medically ready 2 days ago, handoff to a social home        delayed
               G  no case, the EHR plans 10 December                                later
               N  a merged person's current stay (their old record's stay too)      undated

and, not in a bed: an outpatient visit, a finished stay, a patient who died with the stay still
open, a case whose discharge was recorded, an Encounter whose period ended, the parent of L's stay
and the old record of N. Hospital "north" has a patient in a bed that "city" never sees.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from discharge_bridge.cases.handoffs.models import DestinationType, HandoffStatus
from discharge_bridge.cases.handoffs.service import create_handoff, update_handoff
from discharge_bridge.cases.models import Case
from discharge_bridge.cases.readiness import set_dates_by_person
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.ingest.models import EncounterSnapshot, PatientAlias
from discharge_bridge.worklists import figures
from discharge_bridge.worklists.board import (
    Board,
    BoardRow,
    BoardTotals,
    GroupTotals,
    Readiness,
    board,
    board_filter,
)
from tests.support.factories import RULES, flagged_case, make_source, put_encounter, put_risk

pytestmark = pytest.mark.clock


NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
ORDER = ["A", "F", "E", "B", "C", "G", "N", "D", "L"]  # medically ready (longest first), expected, then no date


def _place(session: Session, source_id: int, eid: str, ward: str | None, bed: str | None, **fields: Any) -> None:
    enc = session.exec(
        select(EncounterSnapshot).where(EncounterSnapshot.source_id == source_id, EncounterSnapshot.fhir_id == eid)
    ).one()
    enc.ward, enc.bed = ward, bed
    for name, value in fields.items():
        setattr(enc, name, value)
    session.add(enc)


def _bed(session: Session, source_id: int, eid: str, ward: str | None, bed: str | None, **encounter: Any) -> None:
    name = {"family": f"Patient{eid}", "given": ["Test"]}
    put_encounter(session, source_id, eid, f"p-{eid}", person={"name": [name]}, **encounter)
    _place(session, source_id, eid, ward, bed)


def _case(session: Session, source_id: int, eid: str, ward: str, bed: str) -> Case:
    case = flagged_case(session, source_id, eid, f"p-{eid}")
    _bed(session, source_id, eid, ward, bed)
    return case


def _handoff(session: Session, settings: Settings, case: Case, destination: DestinationType) -> None:
    handoff = create_handoff(
        session, case, actor="anna", destination_type=destination, mappings_dir=settings.mappings_dir
    )
    update_handoff(session, case, handoff, actor="anna", expected_version=None, status=HandoffStatus.referred)


def seed(engine: Engine, settings: Settings) -> dict[str, int]:
    with time_machine.travel(NOW - timedelta(hours=1), tick=False), session_scope(engine) as session:
        city_source = make_source(session, "city")
        city_source.timezone = "Europe/Moscow"
        north = make_source(session, "north").id
        city = city_source.id
        assert city is not None and north is not None
        a = _case(session, city, "A", "Therapy 3", "1")
        set_dates_by_person(session, a, {"medically_ready_at": NOW - 3 * DAY}, actor="ward")
        _handoff(session, settings, a, DestinationType.social_home)
        _bed(session, city, "B", "Therapy 3", "2", planned_end=(NOW + timedelta(hours=2)).isoformat())
        c = _case(session, city, "C", "Therapy 3", "3")
        set_dates_by_person(session, c, {"expected_discharge_at": datetime(2026, 11, 28, 10, tzinfo=UTC)}, actor="w")
        _bed(session, city, "D", "Therapy 3", "4")
        e = _case(session, city, "E", "Surgery 2", "1")
        set_dates_by_person(session, e, {"medically_ready_at": NOW - timedelta(hours=3)}, actor="ward")
        _handoff(session, settings, e, DestinationType.home_with_care)
        f = _case(session, city, "F", "Surgery 2", "2")
        set_dates_by_person(session, f, {"medically_ready_at": NOW - 2 * DAY}, actor="ward")
        _handoff(session, settings, f, DestinationType.social_home)
        _bed(session, city, "G", "Surgery 2", "3", planned_end="2026-12-10T12:00:00+03:00")
        # One stay as a parent admission and its ward leg: the assessment stands on the leg.
        _bed(session, city, "L-stay", None, None)
        put_encounter(session, city, "L", "p-L-stay")
        _place(session, city, "L", "Therapy 3", "7")
        put_risk(session, city, "L", "p-L-stay", flagged=False)
        # A person registered twice, merged: the old record's copy of the stay is not a second bed.
        _bed(session, city, "N", "Surgery 2", "4")
        put_risk(session, city, "N", "p-N", flagged=False)
        _bed(session, city, "N-old", "Surgery 2", "4")
        session.add(PatientAlias(source_id=city, alias_id="p-N-old", survivor_id="p-N", kind="replaced"))
        # Not in a bed.
        _bed(session, city, "visit", "Therapy 3", "9")
        _place(session, city, "visit", "Therapy 3", "9", class_code="AMB")
        _bed(session, city, "gone", "Therapy 3", "9", status="finished", end=(NOW - DAY).isoformat())
        put_encounter(session, city, "died", "p-died", person={"deceasedBoolean": True})
        _place(session, city, "died", "Therapy 3", "9")
        left = _case(session, city, "left", "Therapy 3", "9")
        left.actual_discharge_at = NOW - timedelta(hours=2)
        session.add(left)
        _bed(session, city, "ended", "Therapy 3", "9", end=(NOW - DAY).isoformat())
        _bed(session, north, "far", "Therapy 3", "1")
        return {"city": city, "north": north}


def _board(
    engine: Engine, settings: Settings, source_ids: list[int] | None, max_age: float = 0, **filters: Any
) -> Board:
    with session_scope(engine) as session:
        flt, _, _ = board_filter(
            session,
            source_ids,
            filters.pop("hospital", None),
            filters.pop("ward", None),
            mappings_dir=settings.mappings_dir,
            rules_version=RULES,
            **filters,
        )
        return board(session, flt, now=NOW, mappings_dir=settings.mappings_dir, figures_max_age=max_age)


def _listed(result: Board) -> list[str]:
    return [r.encounter for r in result.rows]


@pytest.fixture
def city(engine: Engine, settings: Settings) -> list[int]:
    return [seed(engine, settings)["city"]]


def test_every_current_inpatient_is_on_the_board_flagged_or_not(
    engine: Engine, settings: Settings, city: list[int]
) -> None:
    result = _board(engine, settings, city)
    assert _listed(result) == ORDER
    rows = {r.encounter: r for r in result.rows}
    unflagged = rows["B"]
    assert unflagged.case_id is None and unflagged.expected_discharge_at == NOW + timedelta(hours=2)
    assert unflagged.expected_discharge_source == "ehr" and unflagged.readiness == Readiness.today
    assert rows["G"].readiness == Readiness.later and rows["D"].readiness == Readiness.undated
    assert rows["A"].readiness == Readiness.delayed and rows["A"].days_delayed == 3.0
    assert rows["C"].expected_discharge_source == "person" and rows["C"].readiness == Readiness.week
    assert rows["A"].handoff is not None and rows["A"].handoff.destination_type == "social_home"
    assert rows["L"].ward == "Therapy 3" and rows["N"].patient == "p-N"
    assert rows["A"].person is not None and rows["A"].person.name == "PatientA Test"
    assert rows["A"].person.length_of_stay_days == 24 and rows["A"].person.age == 86
    assert result.wards == ["Surgery 2", "Therapy 3"]
    assert result.shown == [(city[0], r.patient) for r in result.rows]


def test_totals_by_ward_and_by_destination(engine: Engine, settings: Settings, city: list[int]) -> None:
    result = _board(engine, settings, city)
    totals = result.totals
    assert (totals.in_bed, totals.ready_not_discharged, totals.bed_days_lost) == (9, 3, 5.1)
    assert (totals.ready_today, totals.this_week, totals.delayed) == (2, 3, 2)
    assert result.by_ward == [
        GroupTotals("Surgery 2", in_bed=4, ready_today=1, this_week=1, delayed=1, bed_days_lost=2.1),
        GroupTotals("Therapy 3", in_bed=5, ready_today=1, this_week=2, delayed=1, bed_days_lost=3.0),
    ]
    assert result.by_destination == [
        GroupTotals("home_with_care", in_bed=1, ready_today=1, this_week=1, delayed=0, bed_days_lost=0.1),
        GroupTotals("social_home", in_bed=2, ready_today=0, this_week=0, delayed=2, bed_days_lost=5.0),
        GroupTotals("none", in_bed=6, ready_today=1, this_week=2, delayed=0, bed_days_lost=0.0),
    ]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"destination": "social_home"}, ["A", "F"]),
        ({"destination": "none"}, ["B", "C", "G", "N", "D", "L"]),
        ({"destination": "hospice"}, []),
        ({"status": Readiness.delayed}, ["A", "F"]),
        ({"status": Readiness.today}, ["E", "B"]),
        ({"status": Readiness.week}, ["E", "B", "C"]),
        ({"status": Readiness.later}, ["G"]),
        ({"status": Readiness.undated}, ["N", "D", "L"]),
        ({"ward": "Surgery 2", "status": Readiness.today}, ["E"]),
        ({"ward": "Therapy 3", "destination": "none"}, ["B", "C", "D", "L"]),
    ],
)
def test_filters_by_ward_destination_and_readiness(
    engine: Engine, settings: Settings, city: list[int], filters: dict[str, Any], expected: list[str]
) -> None:
    result = _board(engine, settings, city, **filters)
    assert _listed(result) == expected
    assert result.totals == _totals_of(result.rows)
    assert sum(w.in_bed for w in result.by_ward) == sum(d.in_bed for d in result.by_destination) == len(expected)
    assert result.wards == ["Surgery 2", "Therapy 3"]  # the ward filter's choices stay whole
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(figures, "_kept", OrderedDict())
        _board(engine, settings, city, max_age=60)  # the kept answer over the hospitals...
        kept = _board(engine, settings, city, max_age=60, **filters)  # ...serves this filter's totals
    assert (_listed(kept), kept.totals, kept.by_ward, kept.wards) == (
        expected,
        result.totals,
        result.by_ward,
        result.wards,
    )


def _totals_of(rows: list[BoardRow]) -> BoardTotals:
    """The totals counted from the rows themselves (each row's readiness and delay)."""
    states = [r.readiness for r in rows]
    return BoardTotals(
        in_bed=len(rows),
        ready_not_discharged=sum(r.medically_ready_at is not None for r in rows),
        bed_days_lost=round(sum(r.days_delayed or 0.0 for r in rows), 1),
        ready_today=states.count(Readiness.today),
        this_week=states.count(Readiness.today) + states.count(Readiness.week),
        delayed=states.count(Readiness.delayed),
    )


def test_other_hospitals_and_a_local_day_in_another_zone(engine: Engine, settings: Settings) -> None:
    ids = seed(engine, settings)
    assert _listed(_board(engine, settings, [ids["north"]])) == ["far"]
    assert len(_board(engine, settings, None).rows) == 10
    # In UTC the EHR's 14:00 today is still today; B's and E's days do not move.
    with session_scope(engine) as session:
        flt, _, _ = board_filter(session, [ids["city"]], None, None, status=Readiness.today, rules_version=RULES)
        assert flt.stays is None  # without the mappings folder: the default classes and statuses
        assert [r.encounter for r in board(session, flt, now=NOW).rows] == ["E", "B"]
        late = NOW + timedelta(hours=10)  # 01:00 on Thursday in Moscow: 14:00 UTC was yesterday there
        assert [r.encounter for r in board(session, flt, now=late).rows] == []
