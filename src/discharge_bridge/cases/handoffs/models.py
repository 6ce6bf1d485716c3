"""The handoff table: a referral of the patient to where they go after discharge."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, Integer, String, Text
from sqlmodel import Field, SQLModel

from discharge_bridge.cases.transitions import Transitions
from discharge_bridge.db import UTCDateTime, utcnow


class DestinationType(StrEnum):
    home_with_care = "home_with_care"  # home, with a home-care service
    social_home = "social_home"  # social home / residential care
    gerontology_centre = "gerontology_centre"
    relatives = "relatives"
    hospice = "hospice"  # hospice or palliative care
    other_facility = "other_facility"


class HandoffStatus(StrEnum):
    proposed = "proposed"
    referred = "referred"
    accepted = "accepted"
    scheduled = "scheduled"
    completed = "completed"
    declined = "declined"
    cancelled = "cancelled"


# How a referral to social services runs: the team proposes, refers (sends the application), the
# receiver accepts or declines, a date is scheduled, the handover completes. Either side may cancel
# before completion. completed, declined and cancelled are final.
_H = HandoffStatus
HANDOFF_TRANSITIONS = Transitions(
    HandoffStatus,
    {
        _H.proposed: (_H.referred, _H.cancelled),
        _H.referred: (_H.accepted, _H.declined, _H.cancelled),
        _H.accepted: (_H.scheduled, _H.cancelled),
        # A receiver can still withdraw a scheduled place (a bed given to someone else): declined.
        _H.scheduled: (_H.completed, _H.declined, _H.cancelled),
        _H.completed: (),
        _H.declined: (),
        _H.cancelled: (),
    },
)


_handoff_version = Column("version", Integer, nullable=False)


class Handoff(SQLModel, table=True):
    """Status with the time each status was reached, and the documents checklist copied at creation.

    ``documents`` is ``[{code, label, done, done_at}]``: copied from mappings/handoff_documents.yaml
    so a later edit of the file does not change a referral already under way. Every one of them must
    be ticked before the handoff completes, unless a coordinator overrides: ``documents_override`` is
    then ``{by, at, reason, missing: [codes]}`` (cases/handoffs/service.py).
    """

    __tablename__ = "handoff"
    __table_args__ = (Index("ix_handoff_case", "case_id", "status"),)
    __mapper_args__ = {"version_id_col": _handoff_version}

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="coordination_case.id", ondelete="CASCADE")
    destination_type: DestinationType = Field(sa_type=String(32))
    organisation: str | None = Field(default=None, max_length=300)
    status: HandoffStatus = Field(default=HandoffStatus.proposed, sa_type=String(16))
    scheduled_for: datetime | None = Field(default=None, sa_type=UTCDateTime)  # the agreed handover time
    note: str | None = Field(default=None, sa_column=Column(Text))
    documents: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    documents_override: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    proposed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    referred_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    accepted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    scheduled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    declined_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    cancelled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_by: str = Field(default="system", max_length=200)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    version: int = Field(default=1, sa_column=_handoff_version)
