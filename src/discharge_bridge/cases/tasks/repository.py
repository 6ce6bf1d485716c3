"""Reads of tasks: a case's plan (scoping comes from the case, already fetched in scope)."""

from __future__ import annotations

from sqlalchemy import case as sql_case
from sqlmodel import Session, col, select

from discharge_bridge.cases.tasks.models import TASK_TRANSITIONS, Task, TaskStatus


def list_tasks(session: Session, case_id: int, *, status: TaskStatus | None = None) -> list[Task]:
    """Active tasks first, each group by due time (no due time last), then by creation."""
    query = select(Task).where(Task.case_id == case_id)
    if status is not None:
        query = query.where(Task.status == status)
    done_last = sql_case((col(Task.status).in_(TASK_TRANSITIONS.active), 0), else_=1)
    no_due_last = sql_case((col(Task.due_at).is_(None), 1), else_=0)
    return list(session.exec(query.order_by(done_last, no_due_last, col(Task.due_at), col(Task.id))))
