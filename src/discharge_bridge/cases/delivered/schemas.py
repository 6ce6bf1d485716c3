"""API shapes of services delivered. Inputs forbid unknown fields; times need a zone."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from discharge_bridge.validation import LINES, Id, Instant

Kind = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
DeliveredNote = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000), LINES]


class ServiceDeliveredIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Kind = Field(description="A code of the catalogue (GET /api/v1/services-delivered/catalogue).")
    delivered_at: Instant | None = Field(default=None, description="When it was given (default: now); not later.")
    note: DeliveredNote | None = None
    referral_id: Id | None = Field(default=None, description="The case's referral this help came through.")


class ServiceDeliveredOut(BaseModel):
    id: int
    case_id: int
    source_id: int | None = None
    kind: str
    label: str
    delivered_at: datetime
    delivered_by: str
    role: str
    referral_id: int | None
    note: str | None
    recorded_at: datetime
    struck: bool
    cancelled_at: datetime | None
    cancelled_by: str | None


class CatalogueEntryOut(BaseModel):
    code: str
    labels: dict[str, str]
    roles: list[str]
    categories: list[str]


class DeliveredPage(BaseModel):
    items: list[ServiceDeliveredOut]
    next_after: int | None = Field(description="Pass as `after` for the next page; null on the last page.")
