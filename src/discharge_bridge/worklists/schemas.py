"""The worklist as the API, the page and the CLI give it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


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


class CaseOut(BaseModel):
    id: int
    status: str
    coordinator: str | None


class WorklistItem(BaseModel):
    source: str
    source_id: int = Field(exclude=True)  # for the access log; the API names the source
    hospital: str
    patient: str  # FHIR logical id, to open the chart in the EHR
    encounter: str
    name: str | None = None  # identity: filled where the reader may see it (and the view is logged)
    sex: str | None = None
    mrn: str | None = None
    priority: str
    score: int
    reasons: list[ReasonOut]
    admitted_at: datetime | None
    length_of_stay_days: int | None = None
    age: int | None
    ward: str | None
    bed: str | None
    encounter_status: str
    lace: LaceOut | None
    rules_version: str
    flagged_at: datetime | None
    case: CaseOut | None = None
    next_due_at: datetime | None = None  # the case's soonest active task

    @staticmethod
    def lace_of(value: dict[str, Any] | None) -> LaceOut | None:
        return LaceOut.model_validate(value) if value else None


class Count(BaseModel):
    value: str | None  # None: no ward / no coordinator (unassigned)
    count: int
    label: str | None = None  # a rule's concept, for its label


class WorklistCounts(BaseModel):
    """Per filter, how many rows each of its values would give with the other filters kept."""

    ward: list[Count]
    rule: list[Count]
    priority: list[Count]
    coordinator: list[Count]
    status: list[Count]
    due: list[Count]
    unassigned: int


class WorklistPage(BaseModel):
    total: int  # rows matching the filters, on every page, counted up to 1,000 (see total_more)
    total_more: bool = False  # more rows than ``total`` match: show "1,000+"
    items: list[WorklistItem]
    next_after: str | None = None  # pass as `after` for the next page; None on the last one
    counts: WorklistCounts | None = None

    @property
    def shown(self) -> list[tuple[int, str]]:
        """The (source_id, patient) pairs on this page: what the access log records."""
        return [(item.source_id, item.patient) for item in self.items]


# -- the bed board ----------------------------------------------------------------------------------


class BoardTotalsOut(BaseModel):
    in_bed: int
    ready_not_discharged: int
    bed_days_lost: float
    ready_today: int
    this_week: int  # ready today to Sunday (today's included)
    delayed: int  # the ready date is before today


class GroupTotalsOut(BaseModel):
    key: str | None  # the ward or the destination ("none": no handoff planned); None: no ward known
    in_bed: int
    ready_today: int
    this_week: int
    delayed: int
    bed_days_lost: float


class BoardRowOut(BaseModel):
    source: str
    hospital: str
    ward: str | None
    bed: str | None
    patient: str
    encounter: str
    case_id: int | None
    name: str | None
    sex: str | None
    age: int | None
    mrn: str | None
    admitted_at: datetime | None
    length_of_stay_days: int | None
    medically_ready_at: datetime | None
    medically_ready_source: str | None
    expected_discharge_at: datetime | None
    expected_discharge_source: str | None
    readiness: str  # delayed, today, week, later, undated
    days_delayed: float | None
    destination: str | None
    handoff_status: str | None
    barriers: list[str]  # the codes of the open barriers


class BoardOut(BaseModel):
    totals: BoardTotalsOut
    by_ward: list[GroupTotalsOut]
    by_destination: list[GroupTotalsOut]
    wards: list[str]
    rows: list[BoardRowOut]
    truncated: bool  # more patients are in a bed than the rows given (follow `next_after`)
    next_after: str | None = None  # pass as `after` for the next page; None on the last one
