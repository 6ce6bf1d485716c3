"""Task services on SQLite and PostgreSQL: transitions, stale versions, closed cases, concurrency."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session, select

from discharge_bridge.cases.errors import CaseClosed, InvalidInput, InvalidTransition, StaleVersion
from discharge_bridge.cases.models import Case, CaseOutcome, CaseStatus
from discharge_bridge.cases.service import change_status, open_case
from discharge_bridge.cases.tasks.models import TASK_TRANSITIONS, Task, TaskDomain, TaskKind, TaskStatus
from discharge_bridge.cases.tasks.service import create_task, update_task
from discharge_bridge.db import session_scope
from discharge_bridge.users.service import disable_user
from tests.support.factories import flagged_case, make_source, make_user, put_encounter


def test_allowed_transitions_pass_and_forbidden_ones_name_the_allowed(engine: Engine) -> None:
    with session_scope(engine) as session:
        case = flagged_case(session, make_source(session).id or 0)
        task = create_task(session, case, actor="anna", description="Call the daughter", domain=TaskDomain.social)
        for status in (TaskStatus.accepted, TaskStatus.in_progress, TaskStatus.on_hold, TaskStatus.in_progress):
            assert update_task(session, case, task, actor="anna", expected_version=task.version, status=status)
            session.flush()
        with pytest.raises(InvalidTransition) as err:
            update_task(session, case, task, actor="anna", expected_version=task.version, status=TaskStatus.requested)
        assert err.value.extra["allowed"] == ["cancelled", "completed", "failed", "on-hold"]
        update_task(session, case, task, actor="anna", expected_version=task.version, status=TaskStatus.completed)
        session.flush()
        with pytest.raises(InvalidTransition) as err:
            update_task(session, case, task, actor="anna", expected_version=task.version, status=TaskStatus.cancelled)
        assert err.value.extra["allowed"] == []


def test_every_terminal_status_is_final_and_every_active_one_can_be_cancelled() -> None:
    for status, allowed in TASK_TRANSITIONS.table.items():
        if status in (TaskStatus.completed, TaskStatus.cancelled, TaskStatus.failed):
            assert not allowed
        else:
            assert TaskStatus.cancelled in allowed


def test_a_stale_version_is_refused_and_nothing_is_lost(engine: Engine) -> None:
    with session_scope(engine) as session:
        case = flagged_case(session, make_source(session).id or 0)
        task = create_task(session, case, actor="anna", description="Order a walker", domain=TaskDomain.material)
        make_user(session, "bob")
        update_task(session, case, task, actor="anna", expected_version=1, owner="bob")
        session.flush()
        assert task.version == 2
        with pytest.raises(StaleVersion) as err:
            update_task(session, case, task, actor="carol", expected_version=1, owner="carol")
        assert err.value.extra["current_version"] == 2 and task.owner == "bob"


def test_an_owner_is_an_enabled_user_of_the_hospital_who_may_coordinate(engine: Engine) -> None:
    """Coordinators of the case's hospital and admins (they see every hospital) may own a task; nobody
    else, whether the name is unknown or not: the same words either way. None stays "nobody"."""
    with session_scope(engine) as session:
        case = flagged_case(session, make_source(session).id or 0)
        make_source(session, "north")
        make_user(session, "anna")
        make_user(session, "root", "admin")
        make_user(session, "nora", sources=("north",))
        make_user(session, "boris", "bed_manager")
        make_user(session, "irina", "it_admin")
        make_user(session, "gone")
        disable_user(session, "gone")
        task = create_task(session, case, actor="anna", description="Call the son", domain=TaskDomain.social)
        for name in ("nora", "boris", "irina", "gone", "mallory"):
            with pytest.raises(InvalidInput) as added:
                create_task(session, case, actor="anna", description="x", domain=TaskDomain.social, owner=name)
            with pytest.raises(InvalidInput) as moved:
                update_task(session, case, task, actor="anna", expected_version=task.version, owner=name)
            for err in (added, moved):
                assert err.value.loc == ("body", "owner")
                assert err.value.message == f"{name!r} is not an enabled user of this hospital who may coordinate"
        assert task.owner is None and task.version == 1
        for owner in ("anna", "root", None):
            assert update_task(session, case, task, actor="anna", expected_version=task.version, owner=owner)
            session.flush()
            assert task.owner == owner
        admins = create_task(session, case, actor="a", description="x", domain=TaskDomain.legal, owner="root")
        assert admins.owner == "root"


def test_an_owner_the_task_already_has_is_not_checked_again(engine: Engine) -> None:
    """An owner disabled since keeps the task until someone moves it: an edit of its other fields goes on."""
    with session_scope(engine) as session:
        case = flagged_case(session, make_source(session).id or 0)
        make_user(session, "anna")
        task = create_task(session, case, actor="a", description="x", domain=TaskDomain.legal, owner="anna")
        disable_user(session, "anna")
        assert update_task(session, case, task, actor="b", expected_version=1, owner="anna", description="y")
        assert (task.owner, task.description) == ("anna", "y")


def test_two_writers_that_both_passed_the_check_cannot_both_write(engine: Engine) -> None:
    with session_scope(engine) as session:
        case = flagged_case(session, make_source(session).id or 0)
        task_id = create_task(session, case, actor="a", description="x", domain=TaskDomain.medical).id
    first, second = Session(engine), Session(engine)
    try:
        mine, theirs = first.get(Task, task_id), second.get(Task, task_id)
        assert mine is not None and theirs is not None
        mine.owner = "anna"
        first.commit()
        theirs.owner = "bob"  # read version 1 before anna's commit
        with pytest.raises(StaleDataError):
            second.commit()
    finally:
        first.close()
        second.close()


def test_a_closed_case_has_read_only_tasks(engine: Engine) -> None:
    with session_scope(engine) as session:
        case = flagged_case(session, make_source(session).id or 0)
        task = session.exec(select(Task).where(Task.case_id == case.id)).one()
        change_status(session, case, CaseStatus.closed, outcome=CaseOutcome.not_needed, actor="anna")
        with pytest.raises(CaseClosed):
            update_task(session, case, task, actor="anna", expected_version=task.version, owner="x")
        with pytest.raises(CaseClosed):
            create_task(session, case, actor="anna", description="late", domain=TaskDomain.social)


def test_concurrent_openers_create_one_case_and_one_first_visit_task(engine: Engine) -> None:
    with session_scope(engine) as session:
        sid = make_source(session).id or 0
        put_encounter(session, sid, "adm1", "p1")
    results: list[bool] = []

    def second_opener() -> None:
        with session_scope(engine) as other:
            results.append(
                open_case(
                    other,
                    source_id=sid,
                    encounter_fhir_id="adm1",
                    patient_fhir_id="p1",
                    priority="high",
                    reasons_concepts=[],
                )[1]
            )

    with session_scope(engine) as session:
        _, created = open_case(
            session, source_id=sid, encounter_fhir_id="adm1", patient_fhir_id="p1", priority="high", reasons_concepts=[]
        )
        thread = threading.Thread(target=second_opener)
        thread.start()
        time.sleep(0.5)  # the second opener now waits on our uncommitted row (or on SQLite's write lock)
    thread.join(timeout=30)
    assert created is True and results == [False]
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(Case)).one() == 1
        kinds = session.exec(select(Task.kind)).all()
        assert kinds == [TaskKind.first_visit]
