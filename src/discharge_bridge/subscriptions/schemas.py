"""What hospital IT sees of a source's push channel (never the secret, only where it comes from)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlmodel import Session

from discharge_bridge.subscriptions.models import SourceSubscription
from discharge_bridge.subscriptions.service import subscriptions_of


class SubscriptionPublic(BaseModel):
    kind: str
    server_id: str | None
    criteria: str  # classic criteria, or the Backport topic
    filter: str | None
    content: str
    endpoint: str
    secret_from: str  # "env CITY1_HOOK_SECRET" or "file /etc/..."
    status: str
    heartbeat_seconds: int | None
    last_notification_at: datetime | None
    last_event_number: int
    missing_events: int
    recoveries: int
    last_recovery_at: datetime | None
    last_recovery_reason: str | None
    last_error: str | None

    @classmethod
    def of(cls, row: SourceSubscription) -> SubscriptionPublic:
        return cls(
            kind=str(row.kind),
            server_id=row.server_id,
            criteria=row.criteria,
            filter=row.filter,
            content=str(row.content),
            endpoint=row.endpoint,
            secret_from=f"env {row.secret_env}" if row.secret_env else f"file {row.secret_file}",
            status=str(row.status),
            heartbeat_seconds=row.heartbeat_seconds,
            last_notification_at=row.last_notification_at,
            last_event_number=row.last_event_number,
            missing_events=len(row.missing_events),
            recoveries=row.recoveries,
            last_recovery_at=row.last_recovery_at,
            last_recovery_reason=row.last_recovery_reason,
            last_error=row.last_error,
        )


def push_status(session: Session, source_id: int | None) -> list[SubscriptionPublic]:
    return [SubscriptionPublic.of(row) for row in subscriptions_of(session, source_id)] if source_id else []


def push_summary(session: Session, source_id: int | None) -> str:
    """One line for `sources list`: e.g. "backport active, 1 recovery (no heartbeat...)"."""
    parts = []
    for item in push_status(session, source_id):
        text = f"{item.kind} {item.status}"
        if item.recoveries:
            text += f", {item.recoveries} recover{'y' if item.recoveries == 1 else 'ies'}"
            if item.last_recovery_reason:
                text += f" ({item.last_recovery_reason})"
        parts.append(text)
    return "; ".join(parts)
