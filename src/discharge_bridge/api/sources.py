"""Hospital IT's API: sources, their sync status, dead letters and conformance problems."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, Field

from discharge_bridge.cases.errors import InvalidInput
from discharge_bridge.connections.schemas import SourcePublic
from discharge_bridge.connections.status import conformance_of, source_public
from discharge_bridge.db import utcnow
from discharge_bridge.deps import SessionDep, SourceScope, require_by_method
from discharge_bridge.ingest.deadletters import list_dead_letters, next_letters_cursor
from discharge_bridge.ingest.models import ConformanceIssue
from discharge_bridge.keyset import InvalidCursor
from discharge_bridge.sources.models import Source
from discharge_bridge.sources.service import SourceNotFound, get_source, list_sources
from discharge_bridge.users.roles import Permission
from discharge_bridge.validation import Key, Line, PageSize

router = APIRouter(
    prefix="/api/v1",
    tags=["sources"],
    dependencies=[Depends(require_by_method(Permission.manage_sources, Permission.manage_sources))],
)
SourceName = Annotated[Key, Path(description="The source's name.")]


def _source_or_404(session: SessionDep, name: str, scope: list[int] | None) -> Source:
    try:
        return get_source(session, name, source_ids=scope)
    except SourceNotFound as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("/sources", response_model=list[SourcePublic])
def sources_index(session: SessionDep, scope: SourceScope) -> list[SourcePublic]:
    now = utcnow()
    return [source_public(session, s, now) for s in list_sources(session, source_ids=scope)]


@router.get("/sources/{name}", response_model=SourcePublic)
def source_detail(name: SourceName, session: SessionDep, scope: SourceScope) -> SourcePublic:
    return source_public(session, _source_or_404(session, name, scope), utcnow())


class DeadLetterPublic(BaseModel):
    id: int
    resource_type: str | None
    fhir_id: str | None
    error: str
    count: int
    first_seen: datetime
    last_seen: datetime
    resolved_at: datetime | None


class DeadLetterPage(BaseModel):
    items: list[DeadLetterPublic]
    next_after: str | None = Field(description="Pass as `after` for the next page; null on the last page.")


@router.get("/sources/{name}/deadletters", response_model=DeadLetterPage)
def source_dead_letters(
    name: SourceName,
    session: SessionDep,
    scope: SourceScope,
    include_resolved: bool = False,
    limit: Annotated[PageSize, Query(le=1000)] = 200,
    after: Annotated[Line | None, Query(description="The `next_after` of the previous page.")] = None,
) -> DeadLetterPage:
    """The source's dead letters, the most recently seen first, paged by cursor."""
    source = _source_or_404(session, name, scope)
    try:
        letters = list_dead_letters(
            session, source_id=source.id, include_resolved=include_resolved, limit=limit + 1, after=after
        )
    except InvalidCursor as exc:
        raise InvalidInput(("query", "after"), str(exc)) from None
    return DeadLetterPage(
        items=[DeadLetterPublic.model_validate(d, from_attributes=True) for d in letters[:limit]],
        next_after=next_letters_cursor(letters, limit),
    )


class ConformancePublic(BaseModel):
    resource_type: str
    path: str
    problem: str
    count: int
    example_id: str | None
    last_seen: datetime


@router.get("/sources/{name}/conformance", response_model=list[ConformancePublic])
def source_conformance(name: SourceName, session: SessionDep, scope: SourceScope) -> list[ConformanceIssue]:
    source = _source_or_404(session, name, scope)
    assert source.id is not None
    return conformance_of(session, source.id, limit=None)
