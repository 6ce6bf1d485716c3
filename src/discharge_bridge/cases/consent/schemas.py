"""API shapes of consent. Inputs forbid unknown fields; times need a zone."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from discharge_bridge.cases.consent.models import ConsentGiver, ConsentMethod, ConsentStatus
from discharge_bridge.directory.models import ServiceCategory
from discharge_bridge.validation import ITEMS_MAX, LINES, ONE_LINE, Id, Instant, Name

Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000), LINES]
FormReference = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300), ONE_LINE]


class ConsentIn(BaseModel):
    """Who agreed, to share with which organisations (ids of the directory) or categories, how, until when."""

    model_config = ConfigDict(extra="forbid")
    given_by: ConsentGiver = ConsentGiver.patient
    given_by_name: Name | None = Field(default=None, description="The guardian or representative who agreed.")
    method: ConsentMethod
    witness: Name | None = Field(default=None, description="Verbal consent: who witnessed it.")
    form_reference: FormReference | None = Field(default=None, description="The signed form's number or file.")
    organisation_ids: Annotated[list[Id], Field(max_length=ITEMS_MAX)] = Field(default_factory=list)
    categories: Annotated[list[ServiceCategory], Field(max_length=ITEMS_MAX)] = Field(default_factory=list)
    valid_from: Instant | None = Field(default=None, description="Default: now.")
    valid_until: Instant | None = Field(default=None, description="Default: until revoked.")


class ConsentRevoke(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Reason


class ConsentOut(BaseModel):
    id: int
    case_id: int | None
    status: ConsentStatus
    given_by: ConsentGiver
    given_by_name: str | None
    method: ConsentMethod
    witness: str | None
    form_reference: str | None
    organisation_ids: list[int]
    categories: list[str]
    valid_from: datetime
    valid_until: datetime | None
    recorded_by: str
    recorded_at: datetime
    revoked_at: datetime | None
    revoked_by: str | None
    revoke_reason: str | None
