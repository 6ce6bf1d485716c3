"""What hospital IT sees of a source's write-back: on or off, counts by status, the refused items."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from discharge_bridge.audit import AdminAction, Target, record_admin_action
from discharge_bridge.db import utcnow
from discharge_bridge.ehr.models import WritebackItem, WritebackStatus
from discharge_bridge.ehr.writeback.outbox import WritebackConfig
from discharge_bridge.sources.models import Source

FAILED_SHOWN = 50


@dataclass(frozen=True)
class OutcomeIssue:
    severity: str
    code: str
    diagnostics: str


@dataclass(frozen=True)
class FailedItem:
    id: int
    resource_type: str
    identifier: str
    attempts: int
    last_error: str | None
    issues: list[OutcomeIssue]
    updated_at: datetime


@dataclass(frozen=True)
class WritebackStatusView:
    source: str
    enabled: bool
    resources: list[str]
    pending: int
    sent: int
    failed: int
    next_attempt_at: datetime | None
    failed_items: list[FailedItem] = field(default_factory=list)


def issues_of(outcome: dict[str, Any] | None) -> list[OutcomeIssue]:
    found: list[OutcomeIssue] = []
    for issue in (outcome or {}).get("issue") or []:
        if isinstance(issue, dict):
            text = issue.get("diagnostics") or (issue.get("details") or {}).get("text") or ""
            found.append(OutcomeIssue(str(issue.get("severity") or ""), str(issue.get("code") or ""), str(text)[:500]))
    return found


def writeback_status(session: Session, source: Source, *, failed_limit: int = FAILED_SHOWN) -> WritebackStatusView:
    config = WritebackConfig.of(source)
    counts = dict(
        session.exec(
            select(WritebackItem.status, func.count())
            .where(WritebackItem.source_id == source.id)
            .group_by(col(WritebackItem.status))
        ).all()
    )
    next_at = session.exec(
        select(func.min(WritebackItem.next_attempt_at)).where(
            WritebackItem.source_id == source.id, WritebackItem.status == WritebackStatus.pending
        )
    ).one()
    failed = session.exec(
        select(WritebackItem)
        .where(WritebackItem.source_id == source.id, WritebackItem.status == WritebackStatus.failed)
        .order_by(col(WritebackItem.updated_at).desc(), col(WritebackItem.id).desc())
        .limit(failed_limit)
    )
    return WritebackStatusView(
        source=source.name,
        enabled=config.enabled,
        resources=list(config.resources),
        pending=int(counts.get(WritebackStatus.pending, 0)),
        sent=int(counts.get(WritebackStatus.sent, 0)),
        failed=int(counts.get(WritebackStatus.failed, 0)),
        next_attempt_at=next_at,
        failed_items=[
            FailedItem(
                id=item.id or 0,
                resource_type=item.resource_type,
                identifier=item.identifier,
                attempts=item.attempts,
                last_error=item.last_error,
                issues=issues_of(item.last_outcome),
                updated_at=item.updated_at,
            )
            for item in failed
        ],
    )


def retry_failed(session: Session, source: Source, *, actor: str, now: datetime | None = None) -> int:
    """Failed items of the source back to pending, due now, from their first attempt; how many.
    Recorded in the audit trail of administration as done by ``actor``."""
    done = session.execute(
        update(WritebackItem)
        .where(col(WritebackItem.source_id) == source.id, col(WritebackItem.status) == WritebackStatus.failed)
        .values(status=WritebackStatus.pending, attempts=0, next_attempt_at=now or utcnow())
    )
    count = int(done.rowcount)  # type: ignore[attr-defined]
    record_admin_action(session, actor, AdminAction.writeback_retry, Target("source", source.name), {"items": count})
    session.flush()
    return count
