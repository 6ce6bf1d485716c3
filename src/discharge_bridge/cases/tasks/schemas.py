"""API shapes of tasks. Inputs forbid unknown fields; times need a zone."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from discharge_bridge.cases.tasks.models import TaskDomain, TaskKind, TaskPriority, TaskStatus

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class TaskIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: Description
    domain: TaskDomain
    priority: TaskPriority = TaskPriority.routine
    owner: Name | None = Field(default=None, description="Default: the case's coordinator.")
    due_at: AwareDatetime | None = None


class TaskPatch(BaseModel):
    """Only the fields sent change; ``owner``, ``due_at`` and ``status_reason`` may be set to null."""

    model_config = ConfigDict(extra="forbid")
    status: TaskStatus | None = None
    status_reason: Annotated[str, StringConstraints(max_length=2000)] | None = None
    owner: Name | None = Field(default=None, description="Reassign (null: nobody).")
    due_at: AwareDatetime | None = None
    description: Description | None = None
    domain: TaskDomain | None = None
    priority: TaskPriority | None = None
    version: Annotated[int, Field(ge=0)] | None = Field(default=None, description="Alternative to If-Match.")


class TaskOut(BaseModel):
    id: int
    case_id: int
    kind: TaskKind
    priority: TaskPriority
    domain: TaskDomain
    description: str
    owner: str | None
    due_at: datetime | None
    overdue: bool
    status: TaskStatus
    status_reason: str | None
    status_changed_at: datetime
    allowed_transitions: list[TaskStatus]
    created_at: datetime
    created_by: str
    updated_at: datetime
    version: int
