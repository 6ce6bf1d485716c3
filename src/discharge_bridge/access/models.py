"""The access log: one entry per request that showed identity, one row per patient shown."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, Index, SQLModel

from discharge_bridge.db import UTCDateTime, utcnow


class AccessLogEntry(SQLModel, table=True):
    __tablename__ = "access_log"
    __table_args__ = (Index("ix_access_log_at", "at"), Index("ix_access_log_user", "username", "at"))

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    username: str = Field(max_length=200)
    route: str = Field(max_length=200)  # "ui.case", "api.worklist", "api.board.csv"...
    patient_count: int = 0


class AccessLogPatient(SQLModel, table=True):
    """A patient shown by an entry; indexed so "who saw this patient" is one index range."""

    __tablename__ = "access_log_patient"
    __table_args__ = (Index("ix_access_log_patient", "source_id", "patient_fhir_id", "entry_id"),)

    id: int | None = Field(default=None, primary_key=True)
    entry_id: int = Field(foreign_key="access_log.id", ondelete="CASCADE", index=True)
    source_id: int = Field(foreign_key="source.id", ondelete="CASCADE")
    patient_fhir_id: str = Field(max_length=64)
