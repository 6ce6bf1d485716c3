"""Tables of the EHR surfaces: the write-back outbox, SMART launch states, CDS Hooks token ids.

``WritebackItem`` is one resource we keep on a source's FHIR server, identified there by our
identifier (conditional create / update): ``desired`` is what it should say now, ``sent_hash`` what
the server last accepted; an item whose hashes differ is pending. An EHR outage only delays it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from discharge_bridge.db import UTCDateTime, utcnow


class WritebackStatus(StrEnum):
    pending = "pending"  # desired differs from what the server has: to send (again) at next_attempt_at
    sent = "sent"  # the server holds what we want
    failed = "failed"  # the server refused it for good (4xx other than 408/429): IT must look


class WritebackItem(SQLModel, table=True):
    __tablename__ = "writeback_item"
    __table_args__ = (
        UniqueConstraint("source_id", "resource_type", "identifier"),
        Index("ix_writeback_item_due", "status", "next_attempt_at"),
        Index("ix_writeback_item_case", "case_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source_id: int = Field(foreign_key="source.id", ondelete="CASCADE")
    case_id: int | None = Field(default=None, foreign_key="coordination_case.id", ondelete="SET NULL")
    resource_type: str = Field(max_length=32)  # Flag | RiskAssessment | Task
    identifier: str = Field(max_length=200)  # our identifier's value (the system is per deployment)
    desired: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    desired_hash: str = Field(max_length=64)
    sent_hash: str | None = Field(default=None, max_length=64)
    status: WritebackStatus = Field(default=WritebackStatus.pending, sa_type=String(16))
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    last_outcome: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))  # the OperationOutcome
    remote_id: str | None = Field(default=None, max_length=64)
    remote_version: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class SmartLaunchState(SQLModel, table=True):
    """One authorization-code dance under way: the ``state`` we sent and the PKCE verifier it needs."""

    __tablename__ = "smart_launch_state"

    id: int | None = Field(default=None, primary_key=True)
    state: str = Field(max_length=128, unique=True, index=True)
    source_id: int = Field(foreign_key="source.id", ondelete="CASCADE")
    code_verifier: str = Field(max_length=128)
    launch: str | None = Field(default=None, max_length=500)  # the EHR's launch parameter (EHR launch)
    nonce: str | None = Field(default=None, max_length=128)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class CdsTokenSeen(SQLModel, table=True):
    """A CDS Hooks JWT's ``jti`` already accepted, kept until the token expires: a replay is refused."""

    __tablename__ = "cds_token_seen"

    jti: str = Field(primary_key=True, max_length=200)
    issuer: str = Field(max_length=500)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
