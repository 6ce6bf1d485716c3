"""Tables of the service directory: who helps (Organisation) and with what (DirectoryService).

Modelled on FHIR Organization and HealthcareService; a Location is folded into the address and
area fields (exported as a Location resource). Rows are edited by admins and imported from CSV or
a FHIR Bundle; a service is never deleted once referred to, only made inactive.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, String, Text
from sqlmodel import Field, SQLModel

from discharge_bridge.db import UTCDateTime, utcnow


class ServiceCategory(StrEnum):
    """What kind of help; the first five are discharge destinations (a handoff, cases/handoffs)."""

    home_care = "home_care"
    social_home = "social_home"  # residential social home
    gerontology_centre = "gerontology_centre"
    hospice = "hospice"  # hospice and palliative care
    other_facility = "other_facility"  # rehabilitation, nursing or another care facility
    psychologist = "psychologist"
    legal_aid = "legal_aid"
    guardianship = "guardianship"  # the guardianship and trusteeship authority
    social_protection = "social_protection"  # the district social protection office
    charity = "charity"  # charity funds: they pay for what the state does not
    other = "other"


class Capacity(StrEnum):
    """HealthcareService capacity as the Gravity SDOH IG names it."""

    yes = "yes"
    no = "no"
    waitlist = "waitlist"


class Organisation(SQLModel, table=True):
    __tablename__ = "directory_organisation"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=64, unique=True, index=True)  # our identifier, stable across imports
    name: str = Field(max_length=300)
    kind: str = Field(default="state", max_length=16)  # state | city | charity | private
    phone: str | None = Field(default=None, max_length=64)
    email: str | None = Field(default=None, max_length=200)
    address: str | None = Field(default=None, max_length=500)
    # Organisations with a FHIR server get the ServiceRequest / Task by REST; the rest use the portal.
    fhir_base_url: str | None = Field(default=None, max_length=500)
    active: bool = True
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class DirectoryService(SQLModel, table=True):
    """One kind of help an organisation gives, with who may get it and what it needs.

    ``area`` lists the districts served (empty: the whole city). ``needs`` lists the assessment
    domains it answers (medical, legal, social, psychological, material, daily_living).
    ``documents`` is ``[{code, label}]``: the checklist copied onto a referral when it is made.
    ``response_days``: a reminder task is raised when the receiver has not answered in that time.
    """

    __tablename__ = "directory_service"
    __table_args__ = (Index("ix_directory_service_category", "category", "active"),)

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=64, unique=True, index=True)
    organisation_id: int = Field(foreign_key="directory_organisation.id", ondelete="CASCADE", index=True)
    name: str = Field(max_length=300)
    category: ServiceCategory = Field(sa_type=String(32))
    description: str | None = Field(default=None, sa_column=Column(Text))
    area: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    needs: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    min_age: int | None = None
    max_age: int | None = None
    disability_required: bool = False
    residence_required: str | None = Field(default=None, max_length=200)  # e.g. "Moscow registration"
    income_limit: str | None = Field(default=None, max_length=200)  # stated, checked by the coordinator
    eligibility_note: str | None = Field(default=None, sa_column=Column(Text))
    documents: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    pays_for: str | None = Field(default=None, max_length=500)  # charities: what they pay for
    capacity: Capacity = Field(default=Capacity.yes, sa_type=String(8))
    waiting_days: int | None = None
    response_days: int = 3
    requires_consent: bool = True  # a non-clinical receiver: the patient's consent before sharing
    phone: str | None = Field(default=None, max_length=64)
    email: str | None = Field(default=None, max_length=200)
    hours: str | None = Field(default=None, max_length=300)  # opening hours, as published
    active: bool = True
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
