"""A case's action plan: list and add tasks; read and change one (If-Match required)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from discharge_bridge.cases.errors import NotFound
from discharge_bridge.cases.repository import get_child
from discharge_bridge.cases.tasks.models import TASK_TRANSITIONS, Task, TaskStatus
from discharge_bridge.cases.tasks.repository import list_tasks
from discharge_bridge.cases.tasks.schemas import TaskIn, TaskOut, TaskPatch
from discharge_bridge.cases.tasks.service import create_task, is_overdue, update_task
from discharge_bridge.db import utcnow
from discharge_bridge.deps import (
    Actor,
    CurrentCase,
    IfMatch,
    SessionDep,
    SourceScope,
    case_of,
    expected_version,
    require_by_method,
    set_etag,
)
from discharge_bridge.users.roles import Permission
from discharge_bridge.validation import Id

router = APIRouter(
    prefix="/api/v1",
    tags=["tasks"],
    dependencies=[Depends(require_by_method(Permission.read_cases, Permission.coordinate))],
)


def get_task_or_404(task_id: Annotated[Id, Path()], session: SessionDep, scope: SourceScope) -> Task:
    task = get_child(session, Task, task_id, source_ids=scope)
    if task is None:
        raise NotFound("task", task_id)
    return task


CurrentTask = Annotated[Task, Depends(get_task_or_404)]


def _view(session: SessionDep, task: Task, response: Response | None = None) -> TaskOut:
    session.flush()
    if response is not None:
        set_etag(response, task.version)
    data = {name: getattr(task, name) for name in Task.model_fields}  # model_dump warns on str-valued enums
    return TaskOut(
        **data, overdue=is_overdue(task, utcnow()), allowed_transitions=TASK_TRANSITIONS.allowed(task.status)
    )


@router.get("/cases/{case_id}/tasks", response_model=list[TaskOut])
def tasks_index(
    case: CurrentCase, session: SessionDep, status: Annotated[TaskStatus | None, Query()] = None
) -> list[TaskOut]:
    """Active tasks first by due time, then finished ones."""
    assert case.id is not None
    return [_view(session, t) for t in list_tasks(session, case.id, status=status)]


@router.post("/cases/{case_id}/tasks", response_model=TaskOut, status_code=201)
def tasks_add(case: CurrentCase, body: TaskIn, session: SessionDep, response: Response, actor: Actor) -> TaskOut:
    task = create_task(
        session,
        case,
        actor=actor,
        description=body.description,
        domain=body.domain,
        priority=body.priority,
        owner=body.owner,
        due_at=body.due_at,
    )
    return _view(session, task, response)


@router.get("/tasks/{task_id}", response_model=TaskOut)
def task_get(task: CurrentTask, session: SessionDep, response: Response) -> TaskOut:
    return _view(session, task, response)


@router.patch(
    "/tasks/{task_id}",
    response_model=TaskOut,
    responses={
        409: {"description": "Stale version (`current_version`), forbidden transition (`allowed`), closed case."},
        428: {"description": "Neither If-Match nor `version` was sent."},
    },
)
def task_patch(
    task: CurrentTask, body: TaskPatch, session: SessionDep, response: Response, actor: Actor, if_match: IfMatch
) -> TaskOut:
    """Change status (FHIR Task values, allowed transitions only), owner, due time, text.

    Needs the version edited (If-Match: "<version>" or ``version``): two tablets must not
    silently overwrite each other.
    """
    expected = expected_version(f"task {task.id}", if_match, body.version, required=True)
    values = {f: getattr(body, f) for f in body.model_fields_set - {"version"}}
    update_task(session, case_of(session, task.case_id), task, actor=actor, expected_version=expected, **values)
    return _view(session, task, response)
