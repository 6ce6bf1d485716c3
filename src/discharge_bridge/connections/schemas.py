"""API shapes for sources: what hospital IT sees about a connection (never secrets)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from discharge_bridge.sources.models import Source, SyncRun
from discharge_bridge.sources.safety import masked_url
from discharge_bridge.subscriptions.schemas import SubscriptionPublic


class SyncRunPublic(BaseModel):
    started_at: datetime
    finished_at: datetime | None
    status: str
    fetched: int
    created: int
    updated: int
    dead_letters: int
    error: str | None

    @classmethod
    def of(cls, run: SyncRun) -> SyncRunPublic:
        return cls.model_validate(run, from_attributes=True)


class SourcePublic(BaseModel):
    name: str
    hospital: str
    base_url: str  # what a URL holds before its host (a source saved before issue 16) shown as ***
    auth_type: str
    mode: str
    timezone: str
    poll_interval_seconds: int
    mapping: str
    cursor: str | None
    last_sync_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    lag_seconds: float | None  # since the last successful pass
    dead_letters: int
    assessment_queue: int = 0  # patients stored and waiting for the assessment stage
    last_run: SyncRunPublic | None
    push: list[SubscriptionPublic] = []  # the EHR's Subscriptions and their health (sources subscribe)
    smart_client_id: str | None = None  # SMART App Launch (ehr/launch/settings.py): None = off
    # The EHR's CDS Hooks client (ehr/cds/settings.py): None = CDS Hooks off for this source.
    cds_issuer: str | None = None
    cds_jwks_url: str | None = None

    @classmethod
    def of(
        cls, source: Source, *, dead_letters: int, last_run: SyncRun | None, now: datetime, queued: int = 0
    ) -> SourcePublic:
        lag = (now - source.last_success_at).total_seconds() if source.last_success_at else None
        return cls(
            name=source.name,
            hospital=source.hospital,
            base_url=masked_url(source.base_url),
            auth_type=str(source.auth.get("type", "none")),
            mode=str(source.mode),
            timezone=source.timezone,
            poll_interval_seconds=source.poll_interval_seconds,
            mapping=source.mapping,
            cursor=source.cursors.get("Encounter"),
            last_sync_at=source.last_sync_at,
            last_success_at=source.last_success_at,
            last_error=source.last_error,
            lag_seconds=lag,
            dead_letters=dead_letters,
            assessment_queue=queued,
            last_run=SyncRunPublic.of(last_run) if last_run else None,
            smart_client_id=(source.smart_launch or {}).get("client_id"),
            cds_issuer=(source.cds_hooks or {}).get("issuer"),
            cds_jwks_url=(source.cds_hooks or {}).get("jwks_url"),
        )
