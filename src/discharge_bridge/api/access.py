"""GET /api/v1/access-log (JSON, keyset pages) and /api/v1/access-log.csv: who viewed which patient."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response
from pydantic import BaseModel

from discharge_bridge.access import AccessQuery, AccessRow, iter_access, search_access, write_csv
from discharge_bridge.deps import SessionDep, SourceScope, require
from discharge_bridge.sources.service import SourceNotFound, narrow_scope
from discharge_bridge.users.roles import Permission
from discharge_bridge.validation import Id, Instant, Line, PageSize

router = APIRouter(prefix="/api/v1", tags=["access log"], dependencies=[Depends(require(Permission.audit_access))])


class PatientShown(BaseModel):
    source_id: int
    patient_fhir_id: str


class AccessEntry(BaseModel):
    id: int
    at: datetime
    username: str
    route: str
    patients: list[PatientShown]


class AccessPage(BaseModel):
    entries: list[AccessEntry]
    next_before_id: int | None  # pass as ``before_id`` for the next (older) page


def access_query(
    session: SessionDep,
    scope: SourceScope,
    username: Annotated[Line | None, Query(description="Who viewed.")] = None,
    source: Annotated[Line | None, Query(description="The hospital (source name).")] = None,
    patient: Annotated[Line | None, Query(max_length=64, description="A Patient FHIR id.")] = None,
    route: Annotated[Line | None, Query()] = None,
    since: Annotated[Instant | None, Query(description="From this instant (ISO 8601, with a zone).")] = None,
    until: Annotated[Instant | None, Query(description="Before this instant.")] = None,
    before_id: Annotated[Id | None, Query()] = None,
    limit: Annotated[PageSize, Query(le=500)] = 100,
) -> tuple[AccessQuery, tuple[int, ...] | None]:
    try:
        source_ids = narrow_scope(session, source, scope)
    except SourceNotFound as exc:
        raise HTTPException(404, f"source: {exc}") from None
    query = AccessQuery(
        username=username,
        source_id=source_ids[0] if source is not None and source_ids else None,
        patient_fhir_id=patient,
        route=route,
        since=since,
        until=until,
        before_id=before_id,
        limit=limit,
    )
    return query, tuple(source_ids) if source_ids is not None else None


Search = Annotated[tuple[AccessQuery, tuple[int, ...] | None], Depends(access_query)]


def _entry(row: AccessRow) -> AccessEntry:
    return AccessEntry(
        id=row.id,
        at=row.at,
        username=row.username,
        route=row.route,
        patients=[PatientShown(source_id=s, patient_fhir_id=p) for s, p in row.patients],
    )


@router.get("/access-log", response_model=AccessPage)
def get_access_log(session: SessionDep, search: Search) -> AccessPage:
    """Views of patients' identity, newest first; an admin sees the views of their hospitals' patients."""
    query, source_ids = search
    rows = search_access(session, query, source_ids=source_ids)
    full = len(rows) == query.limit
    return AccessPage(entries=[_entry(r) for r in rows], next_before_id=rows[-1].id if full else None)


@router.get("/access-log.csv", response_class=Response)
def export_access_log(session: SessionDep, search: Search) -> Response:
    """Every matching entry as CSV, one line per patient shown (filters as the JSON list; no limit).

    Built before the response is sent: the request's session closes when the route returns.
    """
    query, source_ids = search
    buffer = io.StringIO()
    write_csv(iter_access(session, query, source_ids=source_ids), buffer)
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="access-log.csv"'},
    )
