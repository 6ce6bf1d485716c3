"""The task table: one action-plan item of a case, with a FHIR Task status."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, Index, Integer, String, Text
from sqlmodel import Field, SQLModel

from discharge_bridge.cases.transitions import Transitions
from discharge_bridge.db import UTCDateTime, utcnow


class TaskStatus(StrEnum):
    """The FHIR R4 Task.status values a coordinator uses (draft/received/ready/rejected are not needed)."""

    requested = "requested"
    accepted = "accepted"
    in_progress = "in-progress"
    on_hold = "on-hold"
    completed = "completed"
    cancelled = "cancelled"
    failed = "failed"


# A subset of FHIR R4's Task state machine: work is requested, accepted by its owner, done (or not),
# and can pause on hold. completed, cancelled and failed are final, as in FHIR.
_T = TaskStatus
TASK_TRANSITIONS = Transitions(
    TaskStatus,
    {
        _T.requested: (_T.accepted, _T.in_progress, _T.cancelled),
        _T.accepted: (_T.in_progress, _T.on_hold, _T.cancelled),
        _T.in_progress: (_T.completed, _T.on_hold, _T.failed, _T.cancelled),
        _T.on_hold: (_T.in_progress, _T.cancelled),
        _T.completed: (),
        _T.cancelled: (),
        _T.failed: (),
    },
)


class TaskKind(StrEnum):
    first_visit = "first_visit"  # created with every new case: see the patient, start the assessment
    find_guardian = "find_guardian"  # a child without a known parent or guardian
    find_relatives = "find_relatives"  # an adult without a known relative (closed from the contact log)
    # The next step when no one is found (cases/contacts/plan.py): a request to the guardianship
    # authority (a child or an incapable adult), or to social protection (an adult).
    guardianship = "guardianship"
    social_services = "social_services"
    custom = "custom"


class TaskPriority(StrEnum):
    routine = "routine"
    urgent = "urgent"


class TaskDomain(StrEnum):
    medical = "medical"
    legal = "legal"
    social = "social"
    psychological = "psychological"
    material = "material"
    daily_living = "daily_living"


_task_version = Column("version", Integer, nullable=False)


class Task(SQLModel, table=True):
    __tablename__ = "case_task"
    __table_args__ = (
        Index("ix_case_task_case", "case_id", "status"),
        Index("ix_case_task_owner", "owner", "status", "due_at"),
        Index("ix_case_task_case_due", "case_id", "status", "due_at"),  # a case's next due task (0014)
    )
    __mapper_args__ = {"version_id_col": _task_version}

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="coordination_case.id", ondelete="CASCADE")
    kind: TaskKind = Field(default=TaskKind.custom, sa_type=String(16))
    priority: TaskPriority = Field(default=TaskPriority.routine, sa_type=String(8))
    domain: TaskDomain = Field(sa_type=String(16))
    description: str = Field(sa_column=Column(Text, nullable=False))
    owner: str | None = Field(default=None, max_length=200)
    due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    status: TaskStatus = Field(default=TaskStatus.requested, sa_type=String(16))
    status_reason: str | None = Field(default=None, sa_column=Column(Text))
    status_changed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by: str = Field(default="system", max_length=200)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    escalated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # overdue, reported once
    version: int = Field(default=1, sa_column=_task_version)
