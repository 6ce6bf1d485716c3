"""Overdue-task escalation: an active task past its due time is raised to urgent and logged, once."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from discharge_bridge.cases.events import EventKind, record_event
from discharge_bridge.cases.models import Case
from discharge_bridge.cases.tasks.models import TASK_TRANSITIONS, Task, TaskPriority

BATCH = 500  # tasks per call: a backlog is worked off over a few runs, each a short transaction


def escalate_overdue(session: Session, *, now: datetime, actor: str = "scheduler") -> int:
    """Mark active tasks due before ``now`` and not yet escalated; return how many.

    ``escalated_at`` makes it once per task: moving the due date later does not re-arm it, so a
    coordinator is told once and the timeline is not flooded. Each escalation writes a
    ``task_overdue`` event on the case with the priority change.
    """
    query = (
        select(Task, Case)
        .join(Case, col(Case.id) == Task.case_id)
        .where(
            col(Task.status).in_(TASK_TRANSITIONS.active),
            col(Task.due_at) < now,
            col(Task.escalated_at).is_(None),
        )
        .order_by(col(Task.due_at), col(Task.id))
        .limit(BATCH)
    )
    count = 0
    for task, case in session.exec(query).all():
        previous = task.priority
        task.escalated_at = now
        task.priority = TaskPriority.urgent
        task.updated_at = now
        session.add(task)
        record_event(
            session,
            case,
            actor=actor,
            kind=EventKind.task_overdue,
            at=now,
            data={
                "task_id": task.id,
                "due_at": task.due_at,
                "owner": task.owner,
                "priority": [previous, TaskPriority.urgent],
            },
        )
        count += 1
    return count
