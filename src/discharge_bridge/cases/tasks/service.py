"""Creating and changing action-plan tasks, with the FHIR Task status transitions a coordinator may make.

The transition table is a subset of FHIR R4's Task state machine (draft/received/ready/rejected
are not used): work is requested, accepted by its owner, done (or not), and can pause on hold.
completed, cancelled and failed are final, as in FHIR.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from discharge_bridge.cases.errors import InvalidTransition, check_version, ensure_open
from discharge_bridge.cases.events import EventKind, changes, record_event
from discharge_bridge.cases.models import Case
from discharge_bridge.cases.tasks.models import Task, TaskDomain, TaskKind, TaskPriority, TaskStatus
from discharge_bridge.db import utcnow

S = TaskStatus
TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    S.requested: frozenset({S.accepted, S.in_progress, S.cancelled}),
    S.accepted: frozenset({S.in_progress, S.on_hold, S.cancelled}),
    S.in_progress: frozenset({S.on_hold, S.completed, S.failed, S.cancelled}),
    S.on_hold: frozenset({S.in_progress, S.cancelled}),
    S.completed: frozenset(),
    S.cancelled: frozenset(),
    S.failed: frozenset(),
}
ACTIVE_TASK_STATUSES = frozenset(s for s, nxt in TRANSITIONS.items() if nxt)
EDITABLE = frozenset({"description", "domain", "owner", "due_at", "priority", "status_reason"})


def allowed_next(status: TaskStatus | str) -> list[str]:
    return sorted(TRANSITIONS[TaskStatus(status)])


def is_overdue(task: Task, now: datetime) -> bool:
    return task.due_at is not None and task.due_at < now and TaskStatus(task.status) in ACTIVE_TASK_STATUSES


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
    """Add a task to an open case's plan, owned by ``owner`` or else the case's coordinator."""
    ensure_open(case)
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
    status: TaskStatus | None = None,
    **values: Any,
) -> bool:
    """Change a task's status (only along TRANSITIONS) and/or its fields in EDITABLE.

    Raises StaleVersion when ``expected_version`` is not the stored one, InvalidTransition (with
    the allowed next statuses) for a move the table forbids, CaseClosed on a closed case.
    """
    ensure_open(case)
    check_version(f"task {task.id}", task.version, expected_version)
    unknown = set(values) - EDITABLE
    if unknown:
        raise TypeError(f"not editable: {sorted(unknown)}")
    now = utcnow()
    current = TaskStatus(task.status)
    if status is not None and status != current:
        if status not in TRANSITIONS[current]:
            raise InvalidTransition(f"task {task.id}", current, status, TRANSITIONS[current])
        values["status"] = status
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
