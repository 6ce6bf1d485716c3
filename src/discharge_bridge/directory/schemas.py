"""What the directory accepts (API bodies, CSV rows, FHIR imports all end up here) and what it shows.

Inputs forbid unknown fields; every bound comes from ``validation`` so a bad value is a 422 naming the
field (or, in an import, the line and column).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

from annotated_types import Interval
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from discharge_bridge.directory.models import Capacity, ServiceCategory
from discharge_bridge.validation import ITEMS_MAX, LINES, ONE_LINE

# Our identifier of an organisation or a service: stable across imports, used in FHIR identifiers.
Code = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$"),
]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300), ONE_LINE]
Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), ONE_LINE]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), ONE_LINE]
Address = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), ONE_LINE]


def _http_url(value: str) -> str:
    """A URL a FHIR client can call: http(s), a host, a port if any in range (``http://[`` is refused)."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (reading it checks it)
    except ValueError:
        raise ValueError("not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("an http(s) URL with a host is expected")
    return value


Url = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=500, pattern=r"^https?://\S+$"),
    ONE_LINE,
    AfterValidator(_http_url),
]
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=4000), LINES]
District = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), ONE_LINE]
Age = Annotated[int, Interval(ge=0, le=130)]
Days = Annotated[int, Interval(ge=0, le=3650)]
ResponseDays = Annotated[int, Interval(ge=1, le=365)]

OrganisationKind = Literal["state", "city", "charity", "private"]
# The assessment domains a service answers, plus daily-living function (cases/schemas.py's sections).
NEED_DOMAINS = ("medical", "legal", "social", "psychological", "material", "daily_living")
NeedDomain = Literal["medical", "legal", "social", "psychological", "material", "daily_living"]


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: Code
    label: Title


class OrganisationFields(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Title
    kind: OrganisationKind = "state"
    phone: Phone | None = None
    email: Short | None = None
    address: Address | None = None
    fhir_base_url: Url | None = Field(
        default=None, description="Set for an organisation with a FHIR server; empty: it uses the portal."
    )
    active: bool = True


class OrganisationIn(OrganisationFields):
    code: Code = Field(description="Our identifier, stable across imports.")


class OrganisationPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Title | None = None
    kind: OrganisationKind | None = None
    phone: Phone | None = None
    email: Short | None = None
    address: Address | None = None
    fhir_base_url: Url | None = None
    active: bool | None = None


class ServiceFields(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Title
    category: ServiceCategory
    description: Text | None = None
    area: Annotated[list[District], Field(max_length=ITEMS_MAX)] = Field(
        default=[], description="Districts served; empty: the whole city."
    )
    needs: Annotated[list[NeedDomain], Field(max_length=len(NEED_DOMAINS))] = Field(
        default=[], description="The assessment domains it answers."
    )
    min_age: Age | None = None
    max_age: Age | None = None
    disability_required: bool = False
    residence_required: Short | None = None
    income_limit: Short | None = None
    eligibility_note: Text | None = None
    documents: Annotated[list[DocumentIn], Field(max_length=ITEMS_MAX)] = Field(
        default=[], description="The checklist copied onto a referral."
    )
    pays_for: Address | None = Field(default=None, description="Charities: what they pay for.")
    capacity: Capacity = Capacity.yes
    waiting_days: Days | None = None
    response_days: ResponseDays = Field(
        default=3, description="A reminder is raised when the receiver has not answered in this many days."
    )
    requires_consent: bool = True
    phone: Phone | None = None
    email: Short | None = None
    hours: Title | None = Field(default=None, description="Opening hours as published.")
    active: bool = True

    @model_validator(mode="after")
    def _ages_in_order(self) -> ServiceFields:
        if self.min_age is not None and self.max_age is not None and self.min_age > self.max_age:
            raise ValueError("min_age is above max_age")
        return self


class ServiceIn(ServiceFields):
    code: Code = Field(description="Our identifier, stable across imports.")
    organisation_id: Annotated[int, Interval(ge=1, le=2**31 - 1)]


class ServicePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Title | None = None
    category: ServiceCategory | None = None
    description: Text | None = None
    area: Annotated[list[District], Field(max_length=ITEMS_MAX)] | None = None
    needs: Annotated[list[NeedDomain], Field(max_length=len(NEED_DOMAINS))] | None = None
    min_age: Age | None = None
    max_age: Age | None = None
    disability_required: bool | None = None
    residence_required: Short | None = None
    income_limit: Short | None = None
    eligibility_note: Text | None = None
    documents: Annotated[list[DocumentIn], Field(max_length=ITEMS_MAX)] | None = None
    pays_for: Address | None = None
    capacity: Capacity | None = None
    waiting_days: Days | None = None
    response_days: ResponseDays | None = None
    requires_consent: bool | None = None
    phone: Phone | None = None
    email: Short | None = None
    hours: Title | None = None
    active: bool | None = None


class OrganisationOut(OrganisationIn):
    model_config = ConfigDict(extra="ignore", from_attributes=True)
    id: int
    uses_portal: bool = Field(description="No FHIR endpoint: its people answer referrals in the portal.")
    updated_at: datetime


class DocumentOut(BaseModel):
    code: str
    label: str


class ServiceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    code: str
    organisation_id: int
    organisation_code: str
    organisation_name: str
    name: str
    category: ServiceCategory
    description: str | None
    area: list[str]
    needs: list[str]
    min_age: int | None
    max_age: int | None
    disability_required: bool
    residence_required: str | None
    income_limit: str | None
    eligibility_note: str | None
    documents: list[DocumentOut]
    pays_for: str | None
    capacity: Capacity
    waiting_days: int | None
    response_days: int
    requires_consent: bool
    phone: str | None
    email: str | None
    hours: str | None
    active: bool
    updated_at: datetime


class ServiceRecord(ServiceFields):
    """A service as an import carries it: its organisation named by code."""

    code: Code
    organisation_code: Code
