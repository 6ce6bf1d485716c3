"""State of the push channel and of Bulk Data backfills, per source.

A subscription row names the *source* of its webhook secret (an environment variable or a file),
never the secret. Notifications are written to an inbox before they are acknowledged, so one the
EHR was told we received is never lost, even if the process dies before ingesting it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, Index, String, Text
from sqlmodel import Field, SQLModel

from discharge_bridge.db import UTCDateTime, utcnow


class SubscriptionKind(StrEnum):
    classic = "classic"  # R4 criteria-based rest-hook
    backport = "backport"  # R4 Subscriptions Backport IG: topic-based, with an event counter


class PayloadContent(StrEnum):
    empty = "empty"  # a ping: something matching changed; we poll from the cursor
    id_only = "id-only"  # references only: each resource is re-read from the EHR
    full_resource = "full-resource"


class SubscriptionStatus(StrEnum):
    """The Subscription.status values of R4, as last seen from the EHR."""

    requested = "requested"
    active = "active"
    error = "error"
    off = "off"


class SourceSubscription(SQLModel, table=True):
    """One Subscription this service created on a source's EHR, and what we know of its health."""

    __tablename__ = "source_subscription"

    id: int | None = Field(default=None, primary_key=True)
    source_id: int = Field(foreign_key="source.id", index=True, ondelete="CASCADE")
    server_id: str | None = Field(default=None, max_length=64)  # Subscription.id on the EHR
    kind: SubscriptionKind = Field(sa_type=String(16))
    criteria: str = Field(sa_column=Column(Text, nullable=False))  # classic criteria, or the backport topic URL
    filter: str | None = Field(default=None, sa_column=Column(Text))  # backport filter criteria
    content: PayloadContent = Field(default=PayloadContent.full_resource, sa_type=String(16))
    endpoint: str = Field(max_length=500)
    secret_env: str | None = Field(default=None, max_length=200)
    secret_file: str | None = Field(default=None, max_length=500)
    heartbeat_seconds: int | None = None
    safety_poll_factor: int = 6  # while subscribed, the source is polled this many times less often
    status: SubscriptionStatus = Field(default=SubscriptionStatus.requested, sa_type=String(16))
    last_event_number: int = 0  # highest events-since-subscription-start seen (backport)
    missing_events: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    gap_noticed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_notification_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_checked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    recoveries: int = 0
    last_recovery_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_recovery_reason: str | None = Field(default=None, max_length=200)
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class WebhookNotification(SQLModel, table=True):
    """A notification received and acknowledged, waiting to go through the ingest path."""

    __tablename__ = "webhook_notification"
    __table_args__ = (Index("ix_webhook_notification_source", "source_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    source_id: int = Field(foreign_key="source.id", ondelete="CASCADE")
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    method: str = Field(max_length=8)
    path_type: str | None = Field(default=None, max_length=64)  # classic PUT {endpoint}/{type}/{id}
    path_id: str | None = Field(default=None, max_length=64)
    body: str = Field(sa_column=Column(Text, nullable=False))
    attempts: int = 0
    error: str | None = Field(default=None, sa_column=Column(Text))
