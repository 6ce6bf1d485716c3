"""Contacts and the contact log on SQLite and PostgreSQL: contacts read from RelatedPerson and
Patient.contact (merged records too), added and edited by hand (409 when stale), log entries on the
timeline, find tasks completed by the right person, and the next step when no one is found, once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from discharge_bridge.cases.contacts import plan
from discharge_bridge.cases.contacts.models import ContactKind, ContactLogEntry, ContactOutcome
from discharge_bridge.cases.contacts.relationships import read
from discharge_bridge.cases.contacts.service import (
    Logged,
    add_contact,
    contact_log,
    get_added,
    list_contacts,
    log_contact,
    no_one_found,
    update_contact,
)
from discharge_bridge.cases.errors import CaseClosed, InvalidInput, NotFound, StaleVersion
from discharge_bridge.cases.events import timeline
from discharge_bridge.cases.models import Case, CaseOutcome, CaseStatus
from discharge_bridge.cases.service import change_status
from discharge_bridge.cases.tasks.models import Task, TaskDomain, TaskKind, TaskPriority, TaskStatus
from discharge_bridge.cases.tasks.service import create_task
from discharge_bridge.config import PROJECT_ROOT
from discharge_bridge.db import session_scope
from tests.cases.contacts.factories import V3, case_with_family, contact, related_person, store
from tests.support.factories import make_source

MAPPINGS = PROJECT_ROOT / "mappings"
NOW = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
pytestmark = pytest.mark.clock


@pytest.fixture(autouse=True)
def _frozen() -> object:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def _tasks(session: Session, case_id: int, *kinds: TaskKind) -> list[Task]:
    query = select(Task).where(Task.case_id == case_id, col(Task.kind).in_(kinds)).order_by(col(Task.id))
    return list(session.exec(query))


def _find_relatives(session: Session, case: Case) -> Task:
    return create_task(
        session,
        case,
        actor="planner",
        kind=TaskKind.find_relatives,
        domain=TaskDomain.social,
        description=plan.FIND_RELATIVES_TEXT,
    )


def _log(session: Session, case: Case, ref: str, outcome: str, **extra: Any) -> Logged:
    return log_contact(
        session, case, actor="anna", contact_ref=ref, kind="call", outcome=outcome, mappings_dir=MAPPINGS, **extra
    )


def test_contacts_come_from_related_person_and_patient_contact(engine: Engine) -> None:
    with session_scope(engine) as session:
        source_id = make_source(session).id or 0
        case = case_with_family(session, source_id)
        store(
            session,
            source_id,
            # no longer the patient's relative: left out
            related_person("p1-rp2", "p1", "SON", "Ivanov Oleg", "+7 900 555-33-44", active=False),
            # a record merged into p1 (Patient.link replaces): its relatives are the person's
            {"resourceType": "Patient", "id": "p1-old", "active": False, "meta": {"versionId": "1"},
             "link": [{"other": {"reference": "Patient/p1"}, "type": "replaced-by"}],
             "contact": [contact("C", "neighbour", "Petrova Olga", "8 (495) 123-45-67",
                                 period={"end": "2020-01-01"})]},  # an old contact, ended: left out
            related_person("p1-old-rp1", "p1-old", "SIS", "Ivanova Vera", "+7 900 555-77-88"),
        )  # fmt: skip
        found = list_contacts(session, case)
        assert [(c.ref, c.name, c.relationship.label, c.relationship.role, c.phones, c.source) for c in found] == [
            ("RelatedPerson/p1-rp1", "Kulikova Anna Ivanovna", "Daughter", "", ("+7 900 555-12-91",), "ehr"),
            ("RelatedPerson/p1-old-rp1", "Ivanova Vera", "Sister", "", ("+7 900 555-77-88",), "ehr"),
            ("Patient/p1/contact/0", "Sidorov Pavel Ivanovich", "Nephew", "Next of kin", ("+7 900 555-01-02",), "ehr"),
        ]


def test_relationship_words_codes_and_roles() -> None:
    assert read([{"coding": [{"system": V3, "code": "MTH", "display": "mother"}]}]).label == "Mother"
    assert read({"coding": [{"code": "C"}], "text": "соседка"}) == read({"coding": [{"code": "C"}], "text": "соседка"})
    neighbour = read([{"coding": [{"code": "C"}], "text": "соседка"}])
    assert (neighbour.code, neighbour.label, neighbour.role) == ("NBOR", "Neighbour", "Emergency contact")
    colleague = read([{"coding": [{"code": "C"}], "text": "colleague"}])
    assert (colleague.code, colleague.label, colleague.role) == ("C", "colleague", "Emergency contact")
    local = read([{"coding": [{"system": "urn:local", "code": "X1", "display": "Godmother"}]}])
    assert (local.code, local.label) == ("", "Godmother")
    assert read(None).label == ""


def test_a_contact_added_by_hand_is_listed_after_the_ehr_and_edited_with_its_version(engine: Engine) -> None:
    with session_scope(engine) as session:
        case = case_with_family(session, make_source(session).id or 0)
        row = add_contact(
            session, case, actor="anna", name="Petrova Olga", relationship="NBOR", phones=["+7 900 111-22-33"]
        )
        assert list_contacts(session, case)[-1].ref == f"added/{row.id}"
        assert row.version == 1 and row.added_by == "anna"
        changed = update_contact(
            session, case, row, actor="boris", expected_version=1, phones=["+7 900 111-22-33", "8 800 000-00-01"]
        )
        session.flush()
        assert changed and row.version == 2 and row.updated_by == "boris"
        assert not update_contact(session, case, row, actor="boris", expected_version=2, name="Petrova Olga")
        with pytest.raises(StaleVersion):
            update_contact(session, case, row, actor="anna", expected_version=1, note="the old form")
        with pytest.raises(InvalidInput) as refused:
            update_contact(session, case, row, actor="anna", expected_version=2, name=None)
        assert refused.value.loc == ("body", "name")
        kinds = [e.kind for e in timeline(session, case.id or 0)]
        assert kinds.count("contact_added") == 1 and kinds.count("contact_updated") == 1
        other = case_with_family(session, case.source_id, eid="adm2", pid="p2")
        with pytest.raises(NotFound):
            get_added(session, other, row.id or 0)  # a contact of another case is not found


def test_a_log_entry_is_on_the_timeline_and_a_daughter_reached_completes_find_relatives(engine: Engine) -> None:
    with session_scope(engine) as session:
        case = case_with_family(session, make_source(session).id or 0)
        task = _find_relatives(session, case)
        earlier = NOW - timedelta(hours=2)
        first = _log(session, case, "RelatedPerson/p1-rp1", "no_answer", at=earlier)
        assert first.tasks_completed == [] and task.status == TaskStatus.requested
        logged = _log(session, case, "RelatedPerson/p1-rp1", "reached", note="will come on Friday")
        assert logged.tasks_completed == [task.id] and logged.next_step is None
        assert task.status == TaskStatus.completed
        assert task.status_reason == "Kulikova Anna Ivanovna"  # names who was found, in no language
        events = [e for e in timeline(session, case.id or 0) if e.kind == "contact_logged"]
        assert [(e.data["name"], e.data["outcome"], e.data["relationship"]) for e in events] == [
            ("Kulikova Anna Ivanovna", "no_answer", "Daughter"),
            ("Kulikova Anna Ivanovna", "reached", "Daughter"),
        ]
        assert events[0].data["at"] == earlier.isoformat()
        assert [e.outcome for e in contact_log(session, case.id or 0)] == ["reached", "no_answer"]  # newest first


def test_only_a_parent_or_guardian_completes_the_search_for_a_childs_guardian(engine: Engine) -> None:
    with session_scope(engine) as session:
        source_id = make_source(session).id or 0
        case = case_with_family(session, source_id, concepts=("no_guardian",), age=12)
        (search,) = _tasks(session, case.id or 0, TaskKind.find_guardian)
        neighbour = add_contact(session, case, actor="anna", name="Petrova Olga", relationship="NBOR", phones=[])
        assert _log(session, case, f"added/{neighbour.id}", "agreed_to_care").tasks_completed == []
        assert _log(session, case, "RelatedPerson/p1-rp1", "reached").tasks_completed == []  # a daughter: no
        mother = add_contact(session, case, actor="anna", name="Ivanova Irina", relationship="MTH", phones=[])
        logged = _log(session, case, f"added/{mother.id}", "agreed_to_care")
        assert logged.tasks_completed == [search.id] and search.status == TaskStatus.completed


def test_the_coordinator_says_no_one_was_found_and_the_next_step_is_created_once(engine: Engine) -> None:
    with session_scope(engine) as session:
        source_id = make_source(session).id or 0
        adult = case_with_family(session, source_id)
        search = _find_relatives(session, adult)
        step = no_one_found(session, adult, actor="anna", mappings_dir=MAPPINGS, note="daughter abroad")
        assert step.created and step.task.kind == TaskKind.social_services and step.tasks_failed == [search.id]
        assert search.status == TaskStatus.failed and search.status_reason == "daughter abroad"
        assert step.task.due_at == NOW + timedelta(days=1) and step.task.domain == TaskDomain.social
        again = no_one_found(session, adult, actor="anna", mappings_dir=MAPPINGS)
        assert not again.created and again.task.id == step.task.id
        assert len(_tasks(session, adult.id or 0, *plan.NEXT_STEP_KINDS)) == 1
        assert [e.kind for e in timeline(session, adult.id or 0)].count("no_relatives_found") == 1

        child = case_with_family(session, source_id, eid="adm2", pid="p2", concepts=("no_guardian",), age=9)
        to_authority = no_one_found(session, child, actor="anna", mappings_dir=MAPPINGS)
        assert to_authority.task.kind == TaskKind.guardianship and to_authority.task.priority == TaskPriority.urgent
        assert to_authority.task.domain == TaskDomain.legal and len(to_authority.tasks_failed) == 1

        dementia = case_with_family(session, source_id, eid="adm3", pid="p3", concepts=("dementia",), age=80)
        assert no_one_found(session, dementia, actor="anna", mappings_dir=MAPPINGS).task.kind == TaskKind.guardianship


def test_every_contact_tried_in_vain_offers_the_next_step_once(engine: Engine, _frozen: object) -> None:
    with session_scope(engine) as session:
        case = case_with_family(session, make_source(session).id or 0)
        search = _find_relatives(session, case)
        nephew = "Patient/p1/contact/0"
        assert _log(session, case, nephew, "wrong_number").next_step is None  # the daughter is not tried yet
        for n in range(plan.NO_ANSWER_LIMIT - 1):
            assert _log(session, case, "RelatedPerson/p1-rp1", "no_answer").next_step is None, n
        logged = _log(session, case, "RelatedPerson/p1-rp1", "no_answer")
        assert logged.next_step is not None and logged.next_step.kind == TaskKind.social_services
        assert search.status == TaskStatus.failed and search.status_reason is None
        (ended,) = [e for e in timeline(session, case.id or 0) if e.kind == "no_relatives_found"]
        assert ended.data["everyone_tried"] is True and ended.data["task_id"] == logged.next_step.id
        assert _log(session, case, "RelatedPerson/p1-rp1", "no_answer").next_step is None
        assert len(_tasks(session, case.id or 0, *plan.NEXT_STEP_KINDS)) == 1


def test_an_answer_starts_the_count_again_and_without_a_search_nothing_is_offered(engine: Engine) -> None:
    def entries(*outcomes: str) -> list[ContactLogEntry]:
        return [
            ContactLogEntry(
                id=n,
                case_id=1,
                contact_ref="x",
                contact_name="x",
                kind=ContactKind.call,
                outcome=ContactOutcome(o),
                at=NOW,
                actor="a",
            )
            for n, o in enumerate(outcomes, start=1)
        ]

    assert plan.exhausted(entries("no_answer", "no_answer", "no_answer"))
    assert not plan.exhausted(entries("no_answer", "no_answer", "reached", "no_answer"))
    assert plan.exhausted(entries("reached", "refused"))
    assert not plan.exhausted(entries("wrong_number", "will_visit"))
    assert not plan.everyone_exhausted([], [])
    with session_scope(engine) as session:
        case = case_with_family(session, make_source(session).id or 0)
        for ref in ("RelatedPerson/p1-rp1", "Patient/p1/contact/0"):
            assert _log(session, case, ref, ContactOutcome.refused).next_step is None  # no search open
        assert _tasks(session, case.id or 0, *plan.NEXT_STEP_KINDS) == []


def test_bad_input_names_the_field_and_a_closed_case_is_read_only(engine: Engine) -> None:
    with session_scope(engine) as session:
        case = case_with_family(session, make_source(session).id or 0)
        with pytest.raises(InvalidInput) as unknown:
            _log(session, case, "RelatedPerson/someone-else", "reached")
        assert unknown.value.loc == ("body", "contact")
        with pytest.raises(InvalidInput) as future:
            _log(session, case, "RelatedPerson/p1-rp1", "reached", at=NOW + timedelta(hours=1))
        assert future.value.loc == ("body", "at")
        change_status(session, case, CaseStatus.closed, actor="anna", outcome=CaseOutcome.not_needed)
        with pytest.raises(CaseClosed):
            add_contact(session, case, actor="anna", name="X", relationship="SON", phones=[])
        with pytest.raises(CaseClosed):
            _log(session, case, "RelatedPerson/p1-rp1", "reached")
