"""The live worklist's projection on SQLite and PostgreSQL: search by name and MRN, every filter, every
sort, keyset paging, the counts beside the filters, the unassigned view and identity on each row.

Hospital "city" (Moscow time) has five flagged admissions, one unflagged and one no longer current;
hospital "north" has a flagged Ivanova the "city" reader must never find. The clock is fixed at
Wednesday 25 November 2026, 12:00 UTC (15:00 in Moscow).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from discharge_bridge import keyset
from discharge_bridge.cases.models import Case, CaseStatus
from discharge_bridge.cases.tasks.models import Task
from discharge_bridge.cases.tasks.service import create_task
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.ingest.models import EncounterSnapshot
from discharge_bridge.risk.models import RiskAssessment
from discharge_bridge.worklists.filters import CaseState, Due, InvalidFilter, Sort, WorklistQuery
from discharge_bridge.worklists.schemas import WorklistPage
from discharge_bridge.worklists.service import worklist
from tests.support.factories import RULES, flagged_case, make_source, move_admission, put_encounter, put_risk

pytestmark = pytest.mark.clock
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
MR = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}


def person(name: str | None, mrn: str, family_first: bool = True) -> dict[str, Any]:
    found: dict[str, Any] = {
        "identifier": [
            {"system": "urn:city:passport", "value": f"passport-{mrn}"},
            {"system": "urn:city:mrn", "value": mrn, "type": MR},
        ],
        "gender": "female",
    }
    if name:
        family, *given = name.split()
        found["name"] = [{"family": family, "given": given}]
    return found


def _admit(session: Session, source_id: int, eid: str, pid: str, who: dict[str, Any], ward: str, admitted: str) -> None:
    put_encounter(session, source_id, eid, pid, person=who)
    enc = session.exec(
        select(EncounterSnapshot).where(EncounterSnapshot.source_id == source_id, EncounterSnapshot.fhir_id == eid)
    ).one()
    enc.ward, enc.bed = ward, f"bed-{eid}"
    session.add(enc)
    move_admission(session, source_id, eid, datetime.fromisoformat(admitted))


def _case(session: Session, source_id: int, eid: str, pid: str, coordinator: str | None, **risk: Any) -> Case:
    case = flagged_case(session, source_id, eid, pid, **risk)
    case.coordinator = coordinator
    session.add(case)
    for task in session.exec(select(Task).where(Task.case_id == case.id)):  # the service's own first visit
        session.delete(task)
    session.flush()
    return case


def seed(engine: Engine, version: str = RULES) -> dict[str, int]:
    """The two hospitals, flagged under rule set ``version``; returns their source ids."""
    with time_machine.travel(NOW - 2 * DAY, tick=False), session_scope(engine) as session:
        city = make_source(session, "city")
        city.timezone = "Europe/Moscow"
        north = make_source(session, "north")
        assert city.id is not None and north.id is not None
        c, n = city.id, north.id
        # flagged_case stores the admission first; _admit then adds the person, ward and admission time.
        one = _case(session, c, "adm1", "p1", "anna", concepts=("lives_alone", "elderly"), rules_version=version)
        _admit(
            session,
            c,
            "adm1",
            "p1",
            person("Ivanova Maria Petrovna", "MR-1001"),
            "Therapy 3",
            "2026-11-01T08:00:00+00:00",
        )
        two = _case(session, c, "adm2", "p2", "bob", priority="medium", concepts=("dementia",), rules_version=version)
        _admit(
            session, c, "adm2", "p2", person("Petrov Ivan Ilyich", "MR-2002"), "Surgery 2", "2026-11-10T08:00:00+00:00"
        )
        _admit(
            session,
            c,
            "adm3",
            "p3",
            person("Сидорова Анна Ёсифовна", "MR-3003"),
            "Therapy 3",
            "2026-11-20T08:00:00+00:00",
        )
        put_risk(session, c, "adm3", "p3", priority="low", concepts=("no_contacts",), rules_version=version)
        four = _case(session, c, "adm4", "p4", None, concepts=("homeless",), rules_version=version)
        _admit(session, c, "adm4", "p4", person("Kuznetsov Oleg", "MR-4004"), "Surgery 2", "2026-11-15T08:00:00+00:00")
        five = _case(
            session, c, "adm5", "p5", "anna", priority="medium", concepts=("lives_alone",), rules_version=version
        )
        _admit(session, c, "adm5", "p5", person(None, "MR-5005"), "Therapy 3", "2026-11-05T08:00:00+00:00")
        _admit(session, c, "adm6", "p6", person("Ivanova Olga", "MR-6006"), "Therapy 3", "2026-11-02T08:00:00+00:00")
        put_risk(session, c, "adm6", "p6", flagged=False, rules_version=version)  # not flagged: never on the worklist
        _admit(session, c, "adm7", "p7", person("Ivanova Vera", "MR-7007"), "Therapy 3", "2026-11-02T08:00:00+00:00")
        put_risk(session, c, "adm7", "p7", current=False, rules_version=version)  # the stay ended
        _case(session, n, "adm9", "p9", "anna", rules_version=version)
        _admit(session, n, "adm9", "p9", person("Ivanova Elena", "MR-1001"), "Therapy 3", "2026-11-03T08:00:00+00:00")
        create_task(session, one, actor="t", description="overdue", domain="social", due_at=NOW - DAY)
        create_task(session, two, actor="t", description="today", domain="social", due_at=NOW + 3 * timedelta(hours=1))
        create_task(session, four, actor="t", description="friday", domain="social", due_at=NOW + 2 * DAY)
        create_task(session, four, actor="t", description="later", domain="social", due_at=NOW + 9 * DAY)
        five.status = CaseStatus.closed
        session.add(five)
        return {"city": c, "north": n}


def page(engine: Engine, settings: Settings, source_ids: list[int] | None, **asked: Any) -> WorklistPage:
    limit = asked.pop("limit", 50)
    counts = asked.pop("counts", False)
    with session_scope(engine) as session:
        return worklist(
            session,
            rules_version=RULES,
            source_ids=source_ids,
            limit=limit,
            query=WorklistQuery(**asked),
            now=NOW,
            mappings_dir=settings.mappings_dir,
            with_counts=counts,
        )


def encounters(result: WorklistPage) -> list[str]:
    return [i.encounter for i in result.items]


@pytest.fixture
def city(engine: Engine) -> list[int]:
    return [seed(engine)["city"]]


def test_rows_carry_identity_and_stay(engine: Engine, settings: Settings, city: list[int]) -> None:
    result = page(engine, settings, city)
    assert result.total == 5 and encounters(result) == ["adm1", "adm4", "adm5", "adm2", "adm3"]
    first = result.items[0]
    assert (first.name, first.sex, first.mrn) == ("Ivanova Maria Petrovna", "female", "MR-1001")
    assert (first.ward, first.bed, first.length_of_stay_days) == ("Therapy 3", "bed-adm1", 24)
    assert first.age == 86 and first.case is not None and first.case.coordinator == "anna"
    assert first.next_due_at == NOW - DAY
    assert result.items[2].name is None and result.items[2].mrn == "MR-5005"  # no name in the EHR
    assert result.items[4].case is None  # flagged, no case yet
    assert result.shown == [(city[0], p) for p in ("p1", "p4", "p5", "p2", "p3")]


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("ivanova", ["adm1"]),  # not the unflagged, ended or other hospital's Ivanovas
        ("IVAN", ["adm1", "adm2"]),  # anywhere in the name, any case
        ("maria ivanova", ["adm1"]),  # every word, in any order
        ("сидорова", ["adm3"]),
        ("ЕСИФОВНА", ["adm3"]),  # Cyrillic yo and ye are one letter to search
        ("MR-2002", ["adm2"]),
        ("mr-500", ["adm5"]),  # part of an MRN finds a patient without a name
        ("passport-MR-4004", ["adm4"]),  # any identifier
        ("%", []),  # no wildcards
        ("_", []),
        ("ivanova petrov", ["adm1"]),  # Petrovna
        ("ivanova ilyich", []),  # each word in one patient
    ],
)
def test_search_by_name_and_mrn(
    engine: Engine, settings: Settings, city: list[int], search: str, expected: list[str]
) -> None:
    assert encounters(page(engine, settings, city, search=search)) == expected


@pytest.mark.parametrize(
    ("asked", "expected"),
    [
        ({"ward": "Surgery 2"}, ["adm4", "adm2"]),
        ({"rule": "dementia"}, ["adm2"]),
        ({"rule": "lives_alone"}, ["adm1", "adm5"]),
        ({"rule": "nothing_like_it"}, []),
        ({"priority": "high"}, ["adm1", "adm4"]),
        ({"min_priority": "medium"}, ["adm1", "adm4", "adm5", "adm2"]),
        ({"coordinator": "anna"}, ["adm1", "adm5"]),
        ({"unassigned": True}, ["adm4", "adm3"]),  # a case without a coordinator, and no case yet
        ({"status": CaseState.none}, ["adm3"]),
        ({"status": CaseState.open}, ["adm1", "adm4", "adm2"]),
        ({"status": CaseState.closed}, ["adm5"]),
        ({"due": Due.overdue}, ["adm1"]),
        ({"due": Due.today}, ["adm2"]),  # 18:00 in Moscow today
        ({"due": Due.week}, ["adm4", "adm2"]),  # to Sunday night in Moscow; not the overdue one
        ({"ward": "Therapy 3", "coordinator": "anna", "search": "ivanova"}, ["adm1"]),
    ],
)
def test_each_filter(
    engine: Engine, settings: Settings, city: list[int], asked: dict[str, Any], expected: list[str]
) -> None:
    result = page(engine, settings, city, **asked)
    assert encounters(result) == expected and result.total == len(expected)


SORTED = {
    Sort.priority: ["adm1", "adm4", "adm5", "adm2", "adm3"],  # high by score, then medium by admission
    Sort.admitted: ["adm3", "adm4", "adm2", "adm5", "adm1"],  # newest first
    Sort.stay: ["adm1", "adm5", "adm2", "adm4", "adm3"],  # longest first
    Sort.due: ["adm1", "adm2", "adm4", "adm5", "adm3"],  # overdue, today, Friday; then none, by priority
}


@pytest.mark.parametrize("sort", list(SORTED))
def test_each_sort_and_its_keyset_pages(engine: Engine, settings: Settings, city: list[int], sort: Sort) -> None:
    assert encounters(page(engine, settings, city, sort=sort)) == SORTED[sort]
    walked: list[str] = []
    after = None
    for _ in range(5):
        result = page(engine, settings, city, sort=sort, after=after, limit=2)
        walked += encounters(result)
        assert result.total == 5  # the total counts every page's rows
        after = result.next_after
        if after is None:
            break
    assert walked == SORTED[sort]


def test_sort_by_name_puts_the_nameless_last(engine: Engine, settings: Settings, city: list[int]) -> None:
    listed = encounters(page(engine, settings, city, sort=Sort.name))
    # Latin names in order; where Cyrillic sorts against Latin is the database's collation.
    assert [e for e in listed if e != "adm3"] == ["adm1", "adm4", "adm2", "adm5"]
    walked, after = [], None
    while True:
        result = page(engine, settings, city, sort=Sort.name, after=after, limit=1)
        walked += encounters(result)
        if (after := result.next_after) is None:
            break
    assert walked == listed


def test_a_cursor_belongs_to_its_sort(engine: Engine, settings: Settings, city: list[int]) -> None:
    cursor = page(engine, settings, city, limit=1).next_after
    assert cursor is not None
    with pytest.raises(InvalidFilter) as refused:
        page(engine, settings, city, sort=Sort.name, after=cursor)
    assert refused.value.param == "after"
    for junk in ("garbage!", "W10", "WyJwcmlvcml0eSIsWzEsMiwzXV0"):  # not base64 JSON; []; not a row id
        with pytest.raises(InvalidFilter):
            page(engine, settings, city, after=junk)
    assert "MR-" not in base64.urlsafe_b64decode(cursor + "==").decode()  # an id, no patient data
    with session_scope(engine) as session:
        north = session.exec(select(RiskAssessment.id).where(RiskAssessment.encounter_fhir_id == "adm9")).one()
    for elsewhere in (north, 10_000):  # another hospital's row; no row at all
        with pytest.raises(InvalidFilter) as refused:
            page(engine, settings, city, after=keyset.encode("priority", elsewhere))
        assert refused.value.param == "after"


def test_counts_per_filter_keep_the_other_filters(engine: Engine, settings: Settings, city: list[int]) -> None:
    counts = page(engine, settings, city, counts=True).counts
    assert counts is not None
    pairs = {
        name: [(c.value, c.count) for c in getattr(counts, name)] for name in ("ward", "priority", "status", "due")
    }
    assert pairs == {
        "ward": [("Surgery 2", 2), ("Therapy 3", 3)],
        "priority": [("high", 2), ("medium", 2), ("low", 1)],
        "status": [("none", 1), ("open", 3), ("closed", 1), ("cancelled", 0)],
        "due": [("overdue", 1), ("today", 1), ("week", 2)],
    }
    assert [(c.value, c.count) for c in counts.coordinator] == [("anna", 2), ("bob", 1), (None, 2)]
    assert counts.unassigned == 2
    rules = {c.value: (c.count, c.label) for c in counts.rule}
    assert rules == {
        "lives_alone": (2, "lives_alone"),
        "elderly": (1, "elderly"),
        "dementia": (1, "dementia"),
        "homeless": (1, "homeless"),
        "no_contacts": (1, "no_contacts"),
    }
    surgery = page(engine, settings, city, ward="Surgery 2", counts=True).counts
    assert surgery is not None
    assert [(c.value, c.count) for c in surgery.ward] == [("Surgery 2", 2), ("Therapy 3", 3)]  # its own filter left out
    assert [(c.value, c.count) for c in surgery.priority] == [("high", 1), ("medium", 1)]
    assert surgery.unassigned == 1 and [(c.value, c.count) for c in surgery.due] == [
        ("overdue", 0),
        ("today", 1),
        ("week", 2),
    ]


def test_other_hospitals_stay_out_and_an_admin_sees_all(engine: Engine, settings: Settings) -> None:
    ids = seed(engine)
    assert encounters(page(engine, settings, [ids["north"]], search="ivanova")) == ["adm9"]
    everyone = page(engine, settings, None, search="ivanova", counts=True)
    assert sorted(encounters(everyone)) == ["adm1", "adm9"] and everyone.counts is not None


def test_bad_filters_name_their_parameter() -> None:
    for asked, param in (
        ({"priority": "urgent"}, "priority"),
        ({"min_priority": "top"}, "min_priority"),
        ({"search": "x" * 101}, "q"),
        ({"search": "a b c d e f g"}, "q"),
        ({"coordinator": "anna", "unassigned": True}, "coordinator"),
    ):
        with pytest.raises(InvalidFilter) as refused:
            WorklistQuery(**asked)
        assert refused.value.param == param
