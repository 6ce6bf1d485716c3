"""The services-delivered table: one row per piece of help given, of a kind from the catalogue.

The catalogue (mappings/services_catalogue.yaml) names the kinds: consultation, document filed,
application to My Documents, relatives found, referral made, psychologist session... A row is
never edited, only struck out (``cancelled_at``) when recorded by mistake, so the counts a city
reports can be traced to who recorded what and when.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel

from discharge_bridge.db import UTCDateTime, utcnow


class ServiceDelivered(SQLModel, table=True):
    __tablename__ = "service_delivered"
    __table_args__ = (
        Index("ix_service_delivered_case", "case_id", "delivered_at"),
        Index("ix_service_delivered_at", "delivered_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="coordination_case.id", ondelete="CASCADE")
    kind: str = Field(max_length=64)  # a catalogue code
    delivered_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    delivered_by: str = Field(max_length=200)  # user name
    role: str = Field(max_length=16)  # coordinator | psychologist | ...
    referral_id: int | None = Field(default=None, foreign_key="referral.id")
    note: str | None = Field(default=None, sa_column=Column(Text))
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    cancelled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    cancelled_by: str | None = Field(default=None, max_length=200)
