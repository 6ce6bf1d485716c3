"""API shapes of handoffs. Inputs forbid unknown fields; times need a zone."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from discharge_bridge.cases.handoffs.models import DestinationType, HandoffStatus
from discharge_bridge.validation import ITEMS_MAX, LINES, ONE_LINE, Instant, Key, LongText, Version

Organisation = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300), ONE_LINE]
Note = LongText


class HandoffIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    destination_type: DestinationType
    organisation: Organisation | None = Field(default=None, description="The receiving organisation.")
    scheduled_for: Instant | None = None
    note: Note | None = None


class HandoffPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: HandoffStatus | None = None
    organisation: Organisation | None = None
    scheduled_for: Instant | None = Field(default=None, description="The agreed handover time.")
    note: Note | None = None
    documents: Annotated[dict[Key, bool], Field(max_length=ITEMS_MAX)] | None = Field(
        default=None, description='Tick documents by code: {"passport": true}. Unknown codes are a 422.'
    )
    override_reason: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000), LINES] | None
    ) = Field(
        default=None,
        description="With status completed while documents of the checklist are not ticked: why the handover "
        "goes ahead without them (recorded with who, when and the missing documents). Without it such a "
        "completion is a 409 naming the missing documents (`missing`).",
    )
    version: Version | None = Field(default=None, description="Alternative to If-Match.")


class DocumentOut(BaseModel):
    code: str
    label: str
    done: bool
    done_at: datetime | None


class OverrideOut(BaseModel):
    """A completion without every document: who decided, when, why, and the codes that were missing."""

    by: str
    at: datetime
    reason: str
    missing: list[str]


class HandoffOut(BaseModel):
    id: int
    case_id: int
    destination_type: DestinationType
    organisation: str | None
    status: HandoffStatus
    allowed_transitions: list[HandoffStatus]
    scheduled_for: datetime | None
    note: str | None
    documents: list[DocumentOut]
    documents_complete: bool
    documents_override: OverrideOut | None = None
    status_dates: dict[str, datetime | None] = Field(description="When each status was reached.")
    created_by: str
    updated_at: datetime
    version: int
