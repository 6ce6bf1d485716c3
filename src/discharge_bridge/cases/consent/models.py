"""The consent table: who agreed to share a person's data, with whom, until when, and how.

Held per patient (source + Patient id), not per case: a consent outlives one admission until it
ends or is revoked. A referral to an organisation is covered when the consent is active on the day,
and names that organisation or the service's category. Revoking keeps the row (status inactive).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, Index, String, Text
from sqlmodel import Field, SQLModel

from discharge_bridge.db import UTCDateTime, utcnow


class ConsentStatus(StrEnum):
    active = "active"
    inactive = "inactive"  # revoked


class ConsentGiver(StrEnum):
    patient = "patient"
    guardian = "guardian"
    representative = "representative"  # a relative or other person with a power of attorney


class ConsentMethod(StrEnum):
    signed_form = "signed_form"
    verbal_witnessed = "verbal_witnessed"
    guardian_signed = "guardian_signed"


class Consent(SQLModel, table=True):
    __tablename__ = "consent"
    __table_args__ = (Index("ix_consent_patient", "source_id", "patient_fhir_id", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    source_id: int = Field(foreign_key="source.id", ondelete="CASCADE")
    patient_fhir_id: str = Field(max_length=64)
    case_id: int | None = Field(default=None, foreign_key="coordination_case.id", ondelete="SET NULL")
    status: ConsentStatus = Field(default=ConsentStatus.active, sa_type=String(16))
    given_by: ConsentGiver = Field(default=ConsentGiver.patient, sa_type=String(16))
    given_by_name: str | None = Field(default=None, max_length=200)  # the guardian / representative
    method: ConsentMethod = Field(sa_type=String(24))
    witness: str | None = Field(default=None, max_length=200)  # verbal consent: who witnessed it
    form_reference: str | None = Field(default=None, max_length=300)  # the signed form's number or file
    organisation_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    categories: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    valid_from: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    valid_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    recorded_by: str = Field(max_length=200)
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_by: str | None = Field(default=None, max_length=200)
    revoke_reason: str | None = Field(default=None, sa_column=Column(Text))
