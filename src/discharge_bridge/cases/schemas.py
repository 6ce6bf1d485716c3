"""API shapes of cases, their timeline, assessment and barriers.

Inputs forbid unknown fields, so a misspelt field is a 422 naming it rather than a silent no-op.
Times must carry a zone (ISO 8601 with Z or an offset): a tablet's local time without one is
ambiguous across the hospitals' time zones.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from discharge_bridge.cases.models import BarrierCode, CaseOutcome, CaseStatus, DateSource, Priority
from discharge_bridge.validation import ITEMS_MAX, LINES, ONE_LINE, Instant, Key, LongText, Name
from discharge_bridge.validation import Version as VersionNumber

Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000), LINES]
Concept = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
Need = Annotated[str, StringConstraints(min_length=1, max_length=500), ONE_LINE]
Version = Annotated[VersionNumber, Field(description="The version you edited (alternative to If-Match).")]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- cases --------------------------------------------------------------------------------------
class CaseOpen(Input):
    source: Name = Field(description="The source (hospital) name.")
    encounter: Key = Field(description="The admission's Encounter id in that source.")


class CasePatch(Input):
    coordinator: Name | None = Field(default=None, description="Assign (null to unassign).")
    status: CaseStatus | None = Field(default=None, description="closed / cancelled, or open to reopen.")
    outcome: CaseOutcome | None = Field(default=None, description="Why the case closed (with status).")
    expected_discharge_at: Instant | None = Field(
        default=None,
        description="Set by a person; null hands it back to the EHR. From the day of admission to a year ahead.",
    )
    medically_ready_at: Instant | None = Field(default=None, description="From the day of admission to a year ahead.")
    keep_reason: Reason | None = Field(
        default=None, description="Keep a case whose flag was withdrawn in the EHR, saying why."
    )
    same_person: Name | None = Field(
        default=None,
        description="Confirm that this other Patient record (one of possibly_same_person) is the same person.",
    )
    version: Version | None = None


class DateOut(BaseModel):
    at: datetime | None
    source: DateSource | None
    set_by: str | None


class CaseSummary(BaseModel):
    id: int
    source: str
    encounter: str
    patient: str
    status: CaseStatus
    outcome: CaseOutcome | None
    priority: Priority | None
    coordinator: str | None
    opened_at: datetime
    closed_at: datetime | None
    expected_discharge_at: datetime | None
    actual_discharge_at: datetime | None
    # Every reason behind the flags was withdrawn in the EHR: close the case, or keep it with a reason.
    flag_withdrawn_at: datetime | None = None
    version: int


class CasePage(BaseModel):
    total: int = Field(description="Matching cases, exact up to 1,000; see total_more.")
    total_more: bool = Field(description="More than `total` cases match.")
    items: list[CaseSummary]
    next_after: str | None = Field(description="Pass as `after` for the next page; null on the last page.")


class FlagsOut(BaseModel):
    flagged: bool
    score: int
    priority: str | None
    rules_version: str
    assessed_at: datetime
    current: bool
    reasons: list[dict[str, Any]]
    lace: dict[str, Any] | None = None
    # HOSPITAL (risk/hospital.py): total, partial, band (None until settled), inputs, missing.
    hospital_score: dict[str, Any] | None = None


class DischargeOut(BaseModel):
    at: datetime | None
    disposition: str | None
    destination: str | None


class CountsOut(BaseModel):
    tasks: dict[str, int]
    tasks_overdue: int
    handoffs: dict[str, int]
    open_barriers: int


class CaseDetail(CaseSummary):
    opened_by: str
    opened_by_hand: bool
    hospital: str
    encounter_status: str | None
    admitted_at: datetime | None
    ward: str | None
    bed: str | None
    flags: FlagsOut | None
    expected_discharge: DateOut
    medically_ready: DateOut
    bed_days_lost: float | None
    discharge: DischargeOut
    counts: CountsOut
    # Other Patient records the EHR says may be this person (Patient.link seealso / refer), unconfirmed.
    possibly_same_person: list[str] = []


class EventOut(BaseModel):
    id: int
    at: datetime
    actor: str
    kind: str
    data: dict[str, Any]


# -- assessment ---------------------------------------------------------------------------------
class DomainNeeds(Input):
    findings: LongText = ""
    needs: Annotated[list[Need], Field(max_length=ITEMS_MAX)] = []


class Domains(Input):
    medical: DomainNeeds = DomainNeeds()
    legal: DomainNeeds = DomainNeeds()
    social: DomainNeeds = DomainNeeds()
    psychological: DomainNeeds = DomainNeeds()
    material: DomainNeeds = DomainNeeds()


Ability = Literal["independent", "needs_help", "dependent"] | None


class DailyLiving(Input):
    go_outside: Ability = None
    cook: Ability = None
    clean: Ability = None
    wash: Ability = None
    take_medicines: Ability = None
    manage_money: Ability = None


class LivingSituation(Input):
    lives_alone: bool | None = None
    has_carer: bool | None = None
    housing: Literal["own_home", "rented", "relatives", "homeless", "institution"] | None = None
    notes: LongText = ""


class AssessmentPut(Input):
    domains: Domains = Domains()
    daily_living: DailyLiving = DailyLiving()
    living_situation: LivingSituation = LivingSituation()
    version: Version | None = None


class CorrectionIn(Input):
    concept: Concept = Field(description="The flag's concept, e.g. lives_alone.")
    correct: bool = Field(description="Whether what the EHR says about this concept is right.")
    note: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000), LINES]
    version: Version | None = None


class CorrectionOut(BaseModel):
    concept: str
    flagged: bool
    correct: bool
    note: str
    by: str
    at: datetime


class AssessmentOut(BaseModel):
    case_id: int
    domains: Domains
    daily_living: DailyLiving
    living_situation: LivingSituation
    flag_corrections: list[CorrectionOut]
    updated_at: datetime | None
    updated_by: str | None
    version: int = Field(description="0 until the first PUT.")


# -- barriers -----------------------------------------------------------------------------------
class BarrierIn(Input):
    code: BarrierCode
    owner: Name | None = None
    note: LongText | None = None
    started_at: Instant | None = Field(default=None, description="Default: now.")


class BarrierPatch(Input):
    owner: Name | None = None
    note: LongText | None = None
    started_at: Instant | None = None
    ended_at: Instant | None = Field(default=None, description="End the barrier (null reopens it).")
    version: Version | None = None


class BarrierOut(BaseModel):
    id: int
    case_id: int
    code: BarrierCode
    owner: str | None
    note: str | None
    started_at: datetime
    ended_at: datetime | None
    open: bool
    delayed_days: float
    created_by: str
    version: int
