"""The write-back outbox: desired resources per case, idempotent reconcile, hashes, withdrawal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from discharge_bridge.cases.assessment import add_flag_correction
from discharge_bridge.cases.models import Case, CaseOutcome, CaseStatus
from discharge_bridge.cases.service import change_status
from discharge_bridge.cases.tasks.models import Task, TaskDomain
from discharge_bridge.cases.tasks.service import create_task, update_task
from discharge_bridge.db import session_scope
from discharge_bridge.ehr.models import WritebackItem, WritebackStatus
from discharge_bridge.ehr.writeback.outbox import reconcile
from discharge_bridge.ehr.writeback.resources import digest
from discharge_bridge.sources.models import Source
from tests.support.factories import flagged_case, make_source

pytestmark = pytest.mark.clock

SYSTEM = "urn:test:writeback"
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def setup(engine: Engine, *, enabled: bool = True, resources: list[str] | None = None) -> tuple[int, int]:
    with time_machine.travel(T0, tick=False), session_scope(engine) as session:
        source = make_source(session)
        source.writeback = {"enabled": enabled, **({"resources": resources} if resources else {})}
        session.add(source)
        case = flagged_case(session, source.id or 0, concepts=("lives_alone", "dementia"))
        create_task(session, case, actor="anna", description="Call the daughter", domain=TaskDomain.social)
        assert source.id is not None and case.id is not None
        return source.id, case.id


def run(engine: Engine, at: datetime) -> tuple[int, int, int]:
    with time_machine.travel(at, tick=False), session_scope(engine) as session:
        source = session.exec(select(Source)).one()
        result = reconcile(session, source, now=at, system=SYSTEM)
        return result.cases, result.created, result.changed


def items(session: Session) -> dict[str, WritebackItem]:
    return {i.identifier: i for i in session.exec(select(WritebackItem))}


def test_reconcile_makes_one_item_per_resource_then_nothing(engine: Engine) -> None:
    _, case_id = setup(engine)
    cases, created, changed = run(engine, T0 + timedelta(minutes=1))
    assert (cases, changed) == (1, 0)
    with Session(engine) as session:
        found = items(session)
        task_ids = [t.id for t in session.exec(select(Task).where(Task.case_id == case_id))]
    expected = {f"flag-city-{case_id}", f"risk-city-{case_id}", *(f"task-city-{t}" for t in task_ids)}
    assert set(found) == expected and created == len(expected)
    for item in found.values():
        assert item.status == WritebackStatus.pending
        assert item.desired_hash == digest(item.desired)
        assert item.sent_hash is None and item.case_id == case_id
    assert found[f"flag-city-{case_id}"].desired["status"] == "active"
    # nothing changed: a second pass (even within the watermark's slack) writes nothing
    assert run(engine, T0 + timedelta(minutes=2))[1:] == (0, 0)
    assert run(engine, T0 + timedelta(hours=1)) == (0, 0, 0)  # and looks at no case at all


def test_write_back_off_writes_nothing(engine: Engine) -> None:
    setup(engine, enabled=False)
    assert run(engine, T0 + timedelta(minutes=1)) == (0, 0, 0)
    with Session(engine) as session:
        assert items(session) == {}


def test_only_the_resources_asked_for(engine: Engine) -> None:
    setup(engine, resources=["Flag"])
    run(engine, T0 + timedelta(minutes=1))
    with Session(engine) as session:
        assert {i.resource_type for i in items(session).values()} == {"Flag"}


def mark_sent(engine: Engine) -> None:
    with session_scope(engine) as session:
        for item in session.exec(select(WritebackItem)):
            item.sent_hash, item.status, item.sent_at = item.desired_hash, WritebackStatus.sent, T0
            session.add(item)


def test_closing_the_case_makes_the_flag_inactive_and_pending(engine: Engine) -> None:
    _, case_id = setup(engine)
    run(engine, T0 + timedelta(minutes=1))
    mark_sent(engine)
    closed_at = T0 + timedelta(hours=3)
    with time_machine.travel(closed_at, tick=False), session_scope(engine) as session:
        case = session.get(Case, case_id)
        assert case is not None
        change_status(session, case, CaseStatus.closed, actor="anna", outcome=CaseOutcome.not_needed)
    _, created, changed = run(engine, closed_at + timedelta(minutes=5))
    with Session(engine) as session:
        found = items(session)
    flag = found[f"flag-city-{case_id}"]
    assert flag.status == WritebackStatus.pending and flag.desired_hash != flag.sent_hash
    assert flag.desired["status"] == "inactive"
    assert flag.desired["period"]["end"] == closed_at.isoformat()
    assert found[f"risk-city-{case_id}"].desired["status"] == "final"  # unchanged: the flag was not wrong
    assert found[f"risk-city-{case_id}"].status == WritebackStatus.sent
    tasks = [i for i in found.values() if i.resource_type == "Task"]
    assert tasks and all(i.desired["status"] == "cancelled" and i.status == WritebackStatus.pending for i in tasks)
    assert created == 0 and changed == 1 + len(tasks)


def test_a_flag_corrected_away_is_withdrawn_and_its_assessment_entered_in_error(engine: Engine) -> None:
    _, case_id = setup(engine)
    run(engine, T0 + timedelta(minutes=1))
    mark_sent(engine)
    at = T0 + timedelta(hours=2)
    with time_machine.travel(at, tick=False), session_scope(engine) as session:
        case = session.get(Case, case_id)
        assert case is not None
        for concept in ("lives_alone", "dementia"):
            add_flag_correction(session, case, actor="anna", concept=concept, correct=False, note="seen at the bedside")
    run(engine, at + timedelta(minutes=1))
    with Session(engine) as session:
        found = items(session)
    assert found[f"flag-city-{case_id}"].desired["status"] == "inactive"
    assert found[f"risk-city-{case_id}"].desired["status"] == "entered-in-error"


def test_a_changed_task_changes_only_its_item_and_a_failed_one_is_tried_again(engine: Engine) -> None:
    _, case_id = setup(engine)
    run(engine, T0 + timedelta(minutes=1))
    mark_sent(engine)
    with session_scope(engine) as session:
        task = session.exec(select(Task).where(Task.description == "Call the daughter")).one()
        item = session.exec(select(WritebackItem).where(WritebackItem.identifier == f"task-city-{task.id}")).one()
        item.status, item.attempts = WritebackStatus.failed, 3
        session.add(item)
        task_id = task.id
    at = T0 + timedelta(hours=1)
    with time_machine.travel(at, tick=False), session_scope(engine) as session:
        task = session.get(Task, task_id)
        case = session.get(Case, case_id)
        assert task is not None and case is not None
        update_task(session, case, task, actor="anna", expected_version=None, status="in-progress")
    assert run(engine, at + timedelta(minutes=1))[1:] == (0, 1)
    with Session(engine) as session:
        found = items(session)
    moved = found[f"task-city-{task_id}"]
    assert moved.desired["status"] == "in-progress"
    assert (moved.status, moved.attempts, moved.next_attempt_at) == (
        WritebackStatus.pending,
        0,
        at + timedelta(minutes=1),
    )
    others = [i for key, i in found.items() if key != f"task-city-{task_id}"]
    assert all(i.status == WritebackStatus.sent for i in others)
