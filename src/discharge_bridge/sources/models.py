"""Tables for sources and their sync history."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, String, Text
from sqlmodel import Field, SQLModel

from discharge_bridge.db import UTCDateTime, utcnow


class SourceMode(StrEnum):
    poll = "poll"
    subscription = "subscription"
    bulk = "bulk"
    file = "file"  # NDJSON files or Bundles on disk: the demo hospital, or a Bulk export copied by hand


class SyncStatus(StrEnum):
    running = "running"
    ok = "ok"
    failed = "failed"


class Source(SQLModel, table=True):
    """One hospital's FHIR endpoint. ``auth`` holds names of env vars / files, never secrets."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=64)
    hospital: str = Field(max_length=200)
    base_url: str = Field(max_length=500)
    auth: dict[str, Any] = Field(default_factory=lambda: {"type": "none"}, sa_column=Column(JSON, nullable=False))
    timezone: str = Field(default="UTC", max_length=64)
    mode: SourceMode = Field(default=SourceMode.poll, sa_type=String(16))
    poll_interval_seconds: int = 300
    mapping: str = Field(default="default", max_length=200)
    inpatient_classes: list[str] = Field(
        default_factory=lambda: ["IMP", "ACUTE", "NONAC"], sa_column=Column(JSON, nullable=False)
    )
    enabled: bool = True
    # How new cases find a coordinator: {"mode": "round_robin"} or {"mode": "ward", "wards": {ward: user}}
    assignment: dict[str, Any] = Field(
        default_factory=lambda: {"mode": "round_robin"}, sa_column=Column(JSON, nullable=False)
    )
    morning_time: str | None = Field(default=None, max_length=5)  # HH:MM local; None = the setting's default
    # Digest of the rule set and mapping that scored this source last: a change triggers a re-score.
    scoring_fingerprint: str | None = Field(default=None, max_length=64)
    # Server-time high-water marks per stream ("Encounter", "Condition", ...), advanced with the rows.
    cursors: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Back into the EHR, each off until hospital IT sets it (ehr/): {"enabled": bool, "resources":
    # ["Flag", "RiskAssessment", "Task"]}; {"issuer", "jwks_url"} of the EHR's CDS Hooks client;
    # {"client_id", "scope", ...} of our SMART App Launch registration there.
    writeback: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    cds_hooks: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    smart_launch: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    last_sync_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_success_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    last_error_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SyncRun(SQLModel, table=True):
    """One pass over one source: what it fetched and how it ended."""

    __tablename__ = "sync_run"

    id: int | None = Field(default=None, primary_key=True)
    source_id: int = Field(foreign_key="source.id", index=True, ondelete="CASCADE")
    kind: str = Field(default="poll", max_length=16)
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    status: SyncStatus = Field(default=SyncStatus.running, sa_type=String(16))
    pages: int = 0
    fetched: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    dead_letters: int = 0
    cursor_before: str | None = None
    cursor_after: str | None = None
    error: str | None = Field(default=None, sa_column=Column(Text))
