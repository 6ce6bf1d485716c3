"""The questionnaire-response table: a BRASS or ISAR screening of a case, pre-filled then completed.

``answers`` is ``{linkId: {"value": ..., "source": "prefilled" | "person", "evidence": ref | None}}``:
what the data suggested stays told apart from what the coordinator answered at the bedside.
``total`` and ``band`` are computed from the answers with the published thresholds when completed.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, Integer, String
from sqlmodel import Field, SQLModel

from discharge_bridge.db import UTCDateTime, utcnow


class ScreeningTool(StrEnum):
    brass = "brass"  # Blaylock Risk Assessment Screening Score
    isar = "isar"  # Identification of Seniors At Risk


class ResponseStatus(StrEnum):
    """FHIR QuestionnaireResponse status values used here."""

    in_progress = "in-progress"
    completed = "completed"
    amended = "amended"


_response_version = Column("version", Integer, nullable=False)


class ScreeningResponse(SQLModel, table=True):
    __tablename__ = "screening_response"
    __table_args__ = (Index("ix_screening_response_case", "case_id", "tool"),)
    __mapper_args__ = {"version_id_col": _response_version}

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="coordination_case.id", ondelete="CASCADE")
    tool: ScreeningTool = Field(sa_type=String(16))
    status: ResponseStatus = Field(default=ResponseStatus.in_progress, sa_type=String(16))
    answers: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    total: int | None = None
    band: str | None = Field(default=None, max_length=32)  # e.g. "needs_planning", "at_risk"
    created_by: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    completed_by: str | None = Field(default=None, max_length=200)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    version: int = Field(default=1, sa_column=_response_version)
