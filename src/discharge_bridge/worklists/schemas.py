"""The worklist item as the API and the CLI give it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class ReasonOut(BaseModel):
    concept: str
    rule: str
    points: int
    evidence: list[str]
    text: str


class LaceOut(BaseModel):
    total: int | None
    components: dict[str, int | None]
    partial: bool
    high: bool


class WorklistItem(BaseModel):
    source: str
    hospital: str
    patient: str  # FHIR logical id, to open the chart in the EHR
    encounter: str
    priority: str
    score: int
    reasons: list[ReasonOut]
    admitted_at: datetime | None
    age: int | None
    ward: str | None
    bed: str | None
    encounter_status: str
    lace: LaceOut | None
    rules_version: str
    flagged_at: datetime | None

    @staticmethod
    def lace_of(value: dict[str, Any] | None) -> LaceOut | None:
        return LaceOut.model_validate(value) if value else None


class WorklistPage(BaseModel):
    total: int
    items: list[WorklistItem]
