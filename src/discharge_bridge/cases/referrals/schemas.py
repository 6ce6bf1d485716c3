"""API shapes of referrals. Inputs forbid unknown fields."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from discharge_bridge.cases.referrals.models import ReferralStatus
from discharge_bridge.cases.tasks.models import TaskDomain
from discharge_bridge.validation import ITEMS_MAX, LINES, Day, Id, Version

Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000), LINES]


class ReferralIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service_id: Id = Field(description="The directory service referred to.")
    needs: Annotated[list[TaskDomain], Field(max_length=ITEMS_MAX)] = Field(
        default_factory=list, description="The assessment domains the referral answers."
    )
    reason: Reason | None = Field(default=None, description="What the person needs, for the receiver.")


class ReferralPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: ReferralStatus
    reason: Reason | None = Field(default=None, description="Why: required for rejected and cancelled.")
    proposed_date: Day | None = Field(default=None, description="The receiver's proposed date for the help.")
    override_reason: Reason | None = Field(
        default=None,
        description="Completing a discharge-destination referral with documents not ticked: why it goes ahead.",
    )
    version: Version | None = Field(default=None, description="Alternative to If-Match.")


class DocumentTick(BaseModel):
    model_config = ConfigDict(extra="forbid")
    done: bool = True


class ReferralDocumentOut(BaseModel):
    code: str
    label: str
    done: bool
    done_at: datetime | None


class ReferralOut(BaseModel):
    id: int
    case_id: int
    service_id: int
    service_name: str
    category: str
    organisation_id: int
    organisation_name: str
    status: ReferralStatus
    allowed_transitions: list[ReferralStatus]
    status_reason: str | None
    reason: str | None
    needs: list[str]
    documents: list[ReferralDocumentOut]
    consent_id: int | None
    handoff_id: int | None
    proposed_date: date | None
    status_dates: dict[str, datetime | None] = Field(description="When each status was reached.")
    answer_due_at: datetime | None
    reminder_task_id: int | None
    created_by: str
    updated_at: datetime
    version: int
