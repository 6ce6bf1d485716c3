"""The scheduler's lease row: who leads, and when it last proved it is alive (read by /readyz)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from discharge_bridge.db import UTCDateTime, utcnow


class SchedulerLease(SQLModel, table=True):
    __tablename__ = "scheduler_lease"

    name: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=200)  # host:pid of the leading process
    acquired_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    heartbeat_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SourceLease(SQLModel, table=True):
    """Which worker polls a source now, until when, and when the source is due again.

    A row with no holder (or an ``expires_at`` in the past: the holder died) is free; workers take
    free rows whose ``next_due_at`` has come (scheduling/workers.py).
    """

    __tablename__ = "source_lease"

    source_id: int = Field(primary_key=True, foreign_key="source.id", ondelete="CASCADE")
    holder: str | None = Field(default=None, max_length=200)  # host:pid of the worker polling it now
    acquired_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    next_due_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
