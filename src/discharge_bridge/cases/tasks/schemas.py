"""API shapes of tasks. Inputs forbid unknown fields; times need a zone, and a due time falls within a year
before now and two years after (a new value: the page leaves a stored one as it is)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from discharge_bridge.cases.tasks.models import TaskDomain, TaskKind, TaskPriority, TaskStatus
from discharge_bridge.clock import utcnow
from discharge_bridge.validation import DUE_AFTER, DUE_BEFORE, LINES, Instant, Name, Version, Within

Description = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000), LINES]
DueAt = Annotated[Instant, Within(utcnow, before=DUE_BEFORE, after=DUE_AFTER)]
DUE = "With a zone; within a year before now and two years after."


class TaskIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: Description
    domain: TaskDomain
    priority: TaskPriority = TaskPriority.routine
    owner: Name | None = Field(default=None, description="Default: the case's coordinator.")
    due_at: DueAt | None = Field(default=None, description=DUE)


class TaskPatch(BaseModel):
    """Only the fields sent change; ``owner``, ``due_at`` and ``status_reason`` may be set to null."""

    model_config = ConfigDict(extra="forbid")
    status: TaskStatus | None = None
    status_reason: Annotated[str, StringConstraints(max_length=2000), LINES] | None = None
    owner: Name | None = Field(default=None, description="Reassign (null: nobody).")
    due_at: DueAt | None = Field(default=None, description=DUE)
    description: Description | None = None
    domain: TaskDomain | None = None
    priority: TaskPriority | None = None
    version: Version | None = Field(default=None, description="Alternative to If-Match.")


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
