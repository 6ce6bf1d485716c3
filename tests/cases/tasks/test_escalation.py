"""Overdue tasks are escalated once: urgent, escalated_at set, a task_overdue event; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine
from sqlalchemy.engine import Engine
from sqlmodel import select

from discharge_bridge.cases.events import EventKind
from discharge_bridge.cases.models import CaseEvent
from discharge_bridge.cases.tasks.escalation import escalate_overdue
from discharge_bridge.cases.tasks.models import Task, TaskDomain, TaskPriority, TaskStatus
from discharge_bridge.cases.tasks.service import create_task, update_task
from discharge_bridge.db import session_scope
from tests.support.factories import flagged_case, make_source, make_user

NOW = datetime(2026, 11, 5, 9, 0, tzinfo=UTC)


def test_each_overdue_active_task_is_escalated_once(engine: Engine) -> None:
    with time_machine.travel(NOW - timedelta(days=3), tick=False), session_scope(engine) as session:
        case = flagged_case(session, make_source(session).id or 0)  # its first visit was due NOW - 2 days
        make_user(session, "anna")

        def task(description: str, due: datetime | None, owner: str | None = "anna") -> Task:
            return create_task(
                session, case, actor="anna", description=description, domain=TaskDomain.social, due_at=due, owner=owner
            )

        overdue = task("Call the daughter", NOW - timedelta(minutes=1))
        held = task("Wait for the guardian court", NOW - timedelta(hours=5))
        update_task(session, case, held, actor="anna", expected_version=held.version, status=TaskStatus.accepted)
        session.flush()
        update_task(session, case, held, actor="anna", expected_version=held.version, status=TaskStatus.on_hold)
        not_yet = task("Book transport", NOW + timedelta(hours=2))
        no_due = task("Someday", None)
        done = task("Done late", NOW - timedelta(days=1))
        for status in (TaskStatus.in_progress, TaskStatus.completed):
            update_task(session, case, done, actor="anna", expected_version=done.version, status=status)
            session.flush()
        named = {"overdue": overdue, "held": held, "not_yet": not_yet, "no_due": no_due, "done": done}
        ids = {name: t.id for name, t in named.items()}

    with session_scope(engine) as session:
        assert escalate_overdue(session, now=NOW) == 3  # first visit, overdue, held
    with session_scope(engine) as session:
        assert escalate_overdue(session, now=NOW + timedelta(minutes=15)) == 0  # once per task
        tasks = {t.id: t for t in session.exec(select(Task))}
        for name in ("overdue", "held"):
            t = tasks[ids[name]]
            assert (t.escalated_at, t.priority) == (NOW, TaskPriority.urgent)
        assert tasks[ids["held"]].status == TaskStatus.on_hold  # escalation does not change the status
        for name in ("not_yet", "no_due", "done"):
            assert tasks[ids[name]].escalated_at is None and tasks[ids[name]].priority == TaskPriority.routine
        events = session.exec(select(CaseEvent).where(CaseEvent.kind == EventKind.task_overdue)).all()
        assert len(events) == 3 and all(e.actor == "scheduler" and e.at == NOW for e in events)
        by_task = {e.data["task_id"]: e.data for e in events}
        assert by_task[ids["overdue"]] == {
            "task_id": ids["overdue"],
            "due_at": (NOW - timedelta(minutes=1)).isoformat(),
            "owner": "anna",
            "priority": ["routine", "urgent"],
        }

    with session_scope(engine) as session:
        later = NOW + timedelta(hours=3)
        assert escalate_overdue(session, now=later) == 1  # "Book transport" is overdue now
        t = session.get(Task, ids["not_yet"])
        assert t is not None and t.escalated_at == later
