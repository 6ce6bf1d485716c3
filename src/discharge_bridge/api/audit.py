"""GET /api/v1/audit (JSON, keyset pages) and /api/v1/audit.csv: the audit trail of administration."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel

from discharge_bridge.audit import AdminAuditEntry, AuditQuery, iter_audit, search_audit, write_csv
from discharge_bridge.deps import SessionDep, require
from discharge_bridge.users.roles import Permission
from discharge_bridge.validation import Id, Instant, Line, PageSize

router = APIRouter(prefix="/api/v1", tags=["audit"], dependencies=[Depends(require(Permission.audit_access))])


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target_kind: str
    target_name: str
    details: dict[str, Any]


class AuditPage(BaseModel):
    entries: list[AuditEntry]
    next_before_id: int | None  # pass as ``before_id`` for the next (older) page


def audit_query(
    actor: Annotated[Line | None, Query(description="Who did it (a user name, cli:<os user>, sign-in).")] = None,
    action: Annotated[
        Line | None, Query(max_length=40, description="e.g. user.add, token.revoke, signin.lock.")
    ] = None,
    target_kind: Annotated[
        Line | None, Query(max_length=40, description="user, token, account, address, source...")
    ] = None,
    target: Annotated[Line | None, Query(description="The target's name or id.")] = None,
    since: Annotated[Instant | None, Query(description="From this instant (ISO 8601, with a zone).")] = None,
    until: Annotated[Instant | None, Query(description="Before this instant.")] = None,
    before_id: Annotated[Id | None, Query()] = None,
    limit: Annotated[PageSize, Query(le=500)] = 100,
) -> AuditQuery:
    return AuditQuery(
        actor=actor,
        action=action,
        target_kind=target_kind,
        target_name=target,
        since=since,
        until=until,
        before_id=before_id,
        limit=limit,
    )


Search = Annotated[AuditQuery, Depends(audit_query)]


def _entry(row: AdminAuditEntry) -> AuditEntry:
    assert row.id is not None
    return AuditEntry(
        id=row.id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        target_kind=row.target_kind,
        target_name=row.target_name,
        details=row.details,
    )


@router.get("/audit", response_model=AuditPage)
def get_audit(session: SessionDep, query: Search) -> AuditPage:
    """Administration and sign-in locks, newest first."""
    rows = search_audit(session, query)
    full = len(rows) == query.limit
    return AuditPage(entries=[_entry(r) for r in rows], next_before_id=rows[-1].id if full else None)


@router.get("/audit.csv", response_class=Response)
def export_audit(session: SessionDep, query: Search) -> Response:
    """Every matching entry as CSV (filters as the JSON list; no limit), built before the session closes."""
    buffer = io.StringIO()
    write_csv(iter_audit(session, query), buffer)
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="admin-audit.csv"'},
    )
