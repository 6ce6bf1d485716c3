"""Creating and changing action-plan tasks, along the FHIR Task status transitions a coordinator
may make (``TASK_TRANSITIONS`` in tasks/models.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from discharge_bridge.cases.assignment import check_task_owner
from discharge_bridge.cases.errors import check_version, ensure_open, refuse_nulls
from discharge_bridge.cases.events import EventKind, changes, record_event
from discharge_bridge.cases.models import Case
from discharge_bridge.cases.tasks.models import (
    TASK_TRANSITIONS,
    Task,
    TaskDomain,
    TaskKind,
    TaskPriority,
    TaskStatus,
)
from discharge_bridge.db import utcnow

EDITABLE = frozenset({"description", "domain", "owner", "due_at", "priority", "status_reason"})
NOT_NULL = frozenset({"status", "description", "domain", "priority"})  # the others may be cleared


def is_overdue(task: Task, now: datetime) -> bool:
    return task.due_at is not None and task.due_at < now and TaskStatus(task.status) in TASK_TRANSITIONS.active


def create_task(
    session: Session,
    case: Case,
    *,
    actor: str,
    description: str,
    domain: TaskDomain,
    kind: TaskKind = TaskKind.custom,
    priority: TaskPriority = TaskPriority.routine,
    owner: str | None = None,
    due_at: datetime | None = None,
    now: datetime | None = None,
) -> Task:
    """Add a task to an open case's plan, owned by ``owner`` (an enabled user of the hospital who may
    coordinate: InvalidInput otherwise) or else the case's coordinator."""
    ensure_open(case)
    check_task_owner(session, case, owner)
    assert case.id is not None
    now = now or utcnow()
    task = Task(
        case_id=case.id,
        kind=kind,
        priority=priority,
        domain=domain,
        description=description,
        owner=owner or case.coordinator,
        due_at=due_at,
        status=TaskStatus.requested,
        status_changed_at=now,
        created_at=now,
        created_by=actor,
        updated_at=now,
    )
    session.add(task)
    session.flush()
    record_event(
        session,
        case,
        actor=actor,
        kind=EventKind.task_created,
        at=now,
        data={
            "task_id": task.id,
            "kind": kind,
            "priority": priority,
            "domain": domain,
            "description": description,
            "owner": task.owner,
            "due_at": due_at,
        },
    )
    return task


def update_task(
    session: Session,
    case: Case,
    task: Task,
    *,
    actor: str,
    expected_version: int | None,
    **values: Any,
) -> bool:
    """Change a task's ``status`` (only along TASK_TRANSITIONS) and/or its fields in EDITABLE;
    ``values`` holds only the fields the caller sends.

    Raises InvalidInput for a field of NOT_NULL sent as None or a new ``owner`` who may not own it
    (the owner the task has already is not checked again), CaseClosed on a closed case,
    StaleVersion when ``expected_version`` is not the stored one, InvalidTransition (with the
    allowed next statuses) for a move the table forbids.
    """
    refuse_nulls(values, NOT_NULL)
    ensure_open(case)
    check_version(f"task {task.id}", task.version, expected_version)
    if "owner" in values and values["owner"] != task.owner:
        check_task_owner(session, case, values["owner"])
    status = values.pop("status", None)
    unknown = set(values) - EDITABLE
    if unknown:
        raise TypeError(f"not editable: {sorted(unknown)}")
    now = utcnow()
    current = TaskStatus(task.status)
    if status is not None and status != current:
        TASK_TRANSITIONS.check(f"task {task.id}", current, status)
        values["status"] = TaskStatus(status)
        values["status_changed_at"] = now
    changed = changes(task, values)
    changed.pop("status_changed_at", None)
    if not changed:
        return False
    task.updated_at = now
    session.add(task)
    session.flush()
    record_event(session, case, actor=actor, kind=EventKind.task_updated, data={"task_id": task.id, **changed})
    return True
