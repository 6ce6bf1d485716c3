"""Services delivered: a case's list and a new one; striking one out; the city-wide list by id; the catalogue.

A psychologist reaches only the cases referred to a psychologist (``deps.visible_case``). The
city-wide list (for the figures) shows case ids and kinds, never who the person is.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query

from discharge_bridge.cases.delivered.catalogue import catalogue, entry_of
from discharge_bridge.cases.delivered.models import ServiceDelivered
from discharge_bridge.cases.delivered.repository import (
    DeliveredQuery,
    get_service_delivered,
    search_delivered,
    services_of_case,
)
from discharge_bridge.cases.delivered.schemas import (
    CatalogueEntryOut,
    DeliveredPage,
    Kind,
    ServiceDeliveredIn,
    ServiceDeliveredOut,
)
from discharge_bridge.cases.delivered.service import may_strike, record_service, strike_service
from discharge_bridge.cases.errors import NotFound
from discharge_bridge.deps import Actor, CurrentCase, CurrentPrincipal, SessionDep, SettingsDep, require, visible_case
from discharge_bridge.sources.service import SourceNotFound, narrow_scope
from discharge_bridge.users.roles import Permission
from discharge_bridge.validation import Id, Instant, Line, PageSize

router = APIRouter(prefix="/api/v1", tags=["services delivered"])
# In the decorator, so the permission is checked before the case is looked up (403 before 404).
RECORDERS = [Depends(require(Permission.record_services))]


def view(row: ServiceDelivered, source_id: int | None = None, language: str = "en") -> ServiceDeliveredOut:
    assert row.id is not None
    entry = entry_of(row.kind)
    return ServiceDeliveredOut(
        id=row.id,
        case_id=row.case_id,
        source_id=source_id,
        kind=row.kind,
        label=entry.label(language) if entry else row.kind,
        delivered_at=row.delivered_at,
        delivered_by=row.delivered_by,
        role=row.role,
        referral_id=row.referral_id,
        note=row.note,
        recorded_at=row.recorded_at,
        struck=row.cancelled_at is not None,
        cancelled_at=row.cancelled_at,
        cancelled_by=row.cancelled_by,
    )


@router.get("/cases/{case_id}/services", response_model=list[ServiceDeliveredOut], dependencies=RECORDERS)
def services_index(case: CurrentCase, session: SessionDep, principal: CurrentPrincipal) -> list[ServiceDeliveredOut]:
    """Every service recorded on the case, struck-out ones included (``struck``), oldest first."""
    assert case.id is not None
    return [view(r, case.source_id, principal.locale) for r in services_of_case(session, case.id)]


@router.post("/cases/{case_id}/services", response_model=ServiceDeliveredOut, status_code=201, dependencies=RECORDERS)
def services_add(
    case: CurrentCase,
    body: ServiceDeliveredIn,
    session: SessionDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    actor: Actor,
) -> ServiceDeliveredOut:
    """Record a service delivered: a kind of the catalogue open to the caller's role (else 422 on `kind`)."""
    row = record_service(
        session,
        case,
        kind=body.kind,
        delivered_at=body.delivered_at,
        actor=actor,
        role=principal.role,
        note=body.note,
        referral_id=body.referral_id,
        mappings_dir=settings.mappings_dir,
    )
    return view(row, case.source_id, principal.locale)


def get_delivered_or_404(
    delivered_id: Annotated[Id, Path()], session: SessionDep, principal: CurrentPrincipal
) -> ServiceDelivered:
    row = get_service_delivered(session, delivered_id, source_ids=principal.scope)
    if row is None or visible_case(session, row.case_id, principal) is None:
        raise NotFound("service delivered", delivered_id)
    if not may_strike(row, actor=principal.username, role=principal.role):
        raise NotFound("service delivered", delivered_id)
    return row


@router.post(
    "/services-delivered/{delivered_id}/strike",
    response_model=ServiceDeliveredOut,
    responses={409: {"description": "Struck out already."}},
    dependencies=RECORDERS,
)
def service_strike(
    row: Annotated[ServiceDelivered, Depends(get_delivered_or_404)],
    session: SessionDep,
    principal: CurrentPrincipal,
    actor: Actor,
) -> ServiceDeliveredOut:
    """Strike out a service recorded by mistake: it stays, shown as struck, and is no longer counted."""
    strike_service(session, row, actor=actor)
    return view(row, None, principal.locale)


@router.get("/services-delivered/catalogue", response_model=list[CatalogueEntryOut], dependencies=RECORDERS)
def services_catalogue(settings: SettingsDep) -> list[CatalogueEntryOut]:
    """The kinds of service that can be recorded, with labels in English and Russian and who may record them."""
    return [
        CatalogueEntryOut(
            code=e.code, labels=e.labels, roles=[r.value for r in e.roles], categories=[c.value for c in e.categories]
        )
        for e in catalogue(settings.mappings_dir)
    ]


@router.get(
    "/services-delivered", response_model=DeliveredPage, dependencies=[Depends(require(Permission.view_figures))]
)
def services_delivered(
    session: SessionDep,
    principal: CurrentPrincipal,
    source: Annotated[Line | None, Query(description="The hospital (source name).")] = None,
    since: Annotated[Instant | None, Query(description="Delivered from this instant (ISO 8601, with a zone).")] = None,
    until: Annotated[Instant | None, Query(description="Delivered before this instant.")] = None,
    kind: Annotated[Kind | None, Query(description="A catalogue code.")] = None,
    include_struck: Annotated[bool, Query(description="Also the rows struck out.")] = False,
    after: Annotated[Id | None, Query(description="The `next_after` of the previous page.")] = None,
    limit: Annotated[PageSize, Query(le=500)] = 100,
) -> DeliveredPage:
    """Services delivered in the caller's hospitals by id (keyset pages), for the city's counts."""
    try:
        source_ids = narrow_scope(session, source, principal.scope)
    except SourceNotFound as exc:
        raise HTTPException(404, f"source: {exc}") from None
    query = DeliveredQuery(since=since, until=until, kind=kind, include_struck=include_struck, after=after, limit=limit)
    rows = search_delivered(session, query, source_ids=source_ids)
    items = [view(row, source_id, principal.locale) for row, source_id in rows]
    return DeliveredPage(items=items, next_after=items[-1].id if len(items) == limit else None)
