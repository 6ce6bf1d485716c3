"""The morning worklist: what each hospital's coordinators find when their day starts.

One row per hospital and local date (the unique key makes the morning job idempotent: a second
run, or a second scheduler that slipped past the leader lock, cannot write a second list).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from discharge_bridge.db import UTCDateTime, utcnow


class MorningList(SQLModel, table=True):
    __tablename__ = "morning_list"
    __table_args__ = (UniqueConstraint("source_id", "local_date"),)

    id: int | None = Field(default=None, primary_key=True)
    source_id: int = Field(foreign_key="source.id", ondelete="CASCADE", index=True)
    local_date: str = Field(max_length=10)  # YYYY-MM-DD in the hospital's time zone
    generated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    since: datetime | None = Field(default=None, sa_type=UTCDateTime)  # the previous list's time
    generated_by: str = Field(default="scheduler", max_length=200)
    # {"new_flags": [...], "due_tasks": [...], "by_coordinator": {...}}: ids and reasons, no names
    items: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
