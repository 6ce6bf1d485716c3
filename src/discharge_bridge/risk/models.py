"""The stored risk assessment: one row per admission and rule-set version."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from discharge_bridge.db import UTCDateTime, utcnow


class RiskAssessment(SQLModel, table=True):
    """Score, priority and explainable reasons for one admission under one rule-set version.

    ``current`` says whether the encounter is still a current inpatient stay (per the source's
    mapping); the worklist shows flagged, current rows of the active rule set. ``inputs_digest``
    fingerprints the resource versions and mapping that produced it, so unchanged data is not
    re-scored. ``admitted_at`` is the start of the admission's encounter as stored, copied when it is
    assessed (any change to the encounter re-assesses it): the worklist's default order (priority,
    score, oldest admission) then comes whole from one index, where the admission's own column made
    PostgreSQL join and sort a whole tie group (1,890 rows for a first page of 50 at city scale).
    """

    __tablename__ = "risk_assessment"
    __table_args__ = (
        UniqueConstraint("source_id", "encounter_fhir_id", "rules_version"),
        Index(
            "ix_risk_assessment_worklist",
            "rules_version",
            "flagged",
            "current",
            text("priority_rank DESC"),
            text("score DESC"),
            "admitted_at",
            "id",
        ),  # 0019
        Index("ix_risk_assessment_patient", "source_id", "patient_fhir_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source_id: int = Field(foreign_key="source.id", ondelete="CASCADE")
    encounter_fhir_id: str = Field(max_length=64)
    patient_fhir_id: str = Field(max_length=64)
    rules_version: str = Field(max_length=64)
    score: int = 0
    priority: str | None = Field(default=None, max_length=8)
    priority_rank: int = 0  # 3 high, 2 medium, 1 low, 0 not flagged: sorts the worklist in SQL
    flagged: bool = False
    current: bool = True
    reasons: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    facts: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    lace: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    hospital_score: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))  # HOSPITAL, with inputs
    age: int | None = None
    admitted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # EncounterSnapshot.period_start
    inputs_digest: str = Field(max_length=64)
    first_flagged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    assessed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
