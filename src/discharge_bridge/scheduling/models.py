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
