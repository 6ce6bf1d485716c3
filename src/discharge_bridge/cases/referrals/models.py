"""The referral table: a ServiceRequest to one directory service plus the Task that follows it.

The Gravity SDOH referral pattern: the coordinator requests; the receiver receives, accepts (or
rejects with a reason), works on it and completes it; either side may cancel with a reason. A
referral to a discharge destination (home care, a social home...) is linked to the case's handoff
(``handoff_id``) and moves it along, so the bed is freed when the referral completes.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, Integer, String, Text
from sqlmodel import Field, SQLModel

from discharge_bridge.cases.transitions import Transitions
from discharge_bridge.db import UTCDateTime, utcnow


class ReferralStatus(StrEnum):
    """FHIR Task status values, the subset a referral uses."""

    requested = "requested"
    received = "received"
    accepted = "accepted"
    in_progress = "in-progress"
    completed = "completed"
    rejected = "rejected"
    cancelled = "cancelled"


_R = ReferralStatus
REFERRAL_TRANSITIONS = Transitions(
    ReferralStatus,
    {
        _R.requested: (_R.received, _R.accepted, _R.rejected, _R.cancelled),
        _R.received: (_R.accepted, _R.rejected, _R.cancelled),
        _R.accepted: (_R.in_progress, _R.completed, _R.cancelled),
        _R.in_progress: (_R.completed, _R.cancelled),
        _R.completed: (),
        _R.rejected: (),
        _R.cancelled: (),
    },
)

OPEN_REFERRAL = (_R.requested, _R.received, _R.accepted, _R.in_progress)

_referral_version = Column("version", Integer, nullable=False)


class Referral(SQLModel, table=True):
    """``documents`` is ``[{code, label, done, done_at}]`` copied from the service at creation.

    Each status reached keeps its time (``<status>_at``); who moved it is in the case's event log.
    ``answer_due_at`` is when a reminder task is raised if the receiver has not answered.
    """

    __tablename__ = "referral"
    __table_args__ = (
        Index("ix_referral_case", "case_id", "status"),
        Index("ix_referral_organisation", "organisation_id", "status", "id"),
        Index("ix_referral_answer_due", "status", "answer_due_at"),
    )
    __mapper_args__ = {"version_id_col": _referral_version}

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="coordination_case.id", ondelete="CASCADE")
    service_id: int = Field(foreign_key="directory_service.id")
    organisation_id: int = Field(foreign_key="directory_organisation.id")
    status: ReferralStatus = Field(default=ReferralStatus.requested, sa_type=String(16))
    status_reason: str | None = Field(default=None, sa_column=Column(Text))  # why rejected / cancelled
    reason: str | None = Field(default=None, sa_column=Column(Text))  # what the person needs, for the receiver
    needs: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    documents: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    consent_id: int | None = Field(default=None, foreign_key="consent.id")
    handoff_id: int | None = Field(default=None, foreign_key="handoff.id")
    proposed_date: date | None = None  # the receiver's proposed date for the help / the handover
    requested_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    received_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    accepted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    in_progress_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    rejected_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    cancelled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    answer_due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    reminder_task_id: int | None = Field(default=None, foreign_key="case_task.id")
    # Receivers with a FHIR server: the ids of the ServiceRequest and Task we created there.
    remote_service_request_id: str | None = Field(default=None, max_length=64)
    remote_task_id: str | None = Field(default=None, max_length=64)
    remote_task_version: str | None = Field(default=None, max_length=64)
    created_by: str = Field(default="system", max_length=200)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    version: int = Field(default=1, sa_column=_referral_version)
