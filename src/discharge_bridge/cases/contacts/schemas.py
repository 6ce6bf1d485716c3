"""API shapes of contacts and the contact log. Inputs forbid unknown fields; times need a zone."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from discharge_bridge.cases.contacts.models import ContactKind, ContactOutcome
from discharge_bridge.cases.contacts.relationships import HandRelationship
from discharge_bridge.validation import ONE_LINE, Instant, Name, Note, Version

_PHONE = re.compile(r"^\+?[0-9()\-.\s]+$")


def _phone(value: str) -> str:
    if not _PHONE.match(value) or sum(ch.isdigit() for ch in value) < 5:
        raise ValueError("a phone number has digits, spaces, + ( ) - . only, and at least 5 digits")
    return value


Phone = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=5, max_length=40), ONE_LINE, AfterValidator(_phone)
]
Phones = Annotated[list[Phone], Field(max_length=5)]
Address = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500), ONE_LINE]


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    relationship: HandRelationship = Field(description="HL7 v3 RoleCode of the person's relationship to the patient.")
    phones: Phones = Field(default_factory=list, description="Most useful first; at most 5.")
    address: Address | None = None
    note: Note | None = None


class ContactPatch(BaseModel):
    """Only the fields sent change; ``address`` and ``note`` may be set to null."""

    model_config = ConfigDict(extra="forbid")
    name: Name | None = None
    relationship: HandRelationship | None = None
    phones: Phones | None = None
    address: Address | None = None
    note: Note | None = None
    version: Version | None = Field(default=None, description="Alternative to If-Match.")


class ContactOut(BaseModel):
    ref: str = Field(
        description='Names the contact in a log entry: "RelatedPerson/<id>", "Patient/<id>/contact/<n>" '
        '(from the EHR) or "added/<id>".'
    )
    source: Literal["ehr", "added"]
    id: int | None = Field(description="The hand-added contact's id (for PATCH); null for the EHR's.")
    name: str
    relationship: str = Field(description="In words (English).")
    relationship_code: str | None
    role: str | None = Field(description='A contact role beside the kinship, e.g. "Next of kin".')
    phones: list[str]
    address: str | None
    note: str | None
    added_by: str | None
    added_at: datetime | None
    version: int | None
    attempts: int = Field(description="Log entries about this contact.")
    last_outcome: ContactOutcome | None
    last_at: datetime | None


class LogEntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    contact: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=160), ONE_LINE] = Field(
        description="The ``ref`` of one of the case's contacts."
    )
    kind: ContactKind
    outcome: ContactOutcome
    at: Instant | None = Field(default=None, description="When it took place (default: now); not in the future.")
    note: Note | None = None


class LogEntryOut(BaseModel):
    id: int
    case_id: int
    contact: str
    contact_name: str
    relationship: str
    kind: ContactKind
    outcome: ContactOutcome
    at: datetime
    actor: str
    note: str | None
    recorded_at: datetime


class LogResultOut(LogEntryOut):
    tasks_completed: list[int] = Field(description='"Find parent or guardian" / "find relatives" tasks it completed.')
    next_step_task_id: int | None = Field(description="The request task the plan offered when no one was found.")


class NoneFoundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: Note | None = None


class NextStepOut(BaseModel):
    task_id: int
    kind: str = Field(description="guardianship or social_services")
    created: bool = Field(description="False when the case already had it (it is created once).")
    tasks_failed: list[int] = Field(description="Open find tasks ended as failed.")
