"""Cases: list, open by hand, detail, change (assign, close, dates), timeline.

Assessment routes live beside this module and are included here; barrier routes (writable by
bed managers too) are a router of their own.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from discharge_bridge.api.assessment import router as assessment_router
from discharge_bridge.cases.errors import InvalidInput, NotFound
from discharge_bridge.cases.events import timeline
from discharge_bridge.cases.models import Case, CaseStatus, Priority
from discharge_bridge.cases.repository import list_cases
from discharge_bridge.cases.schemas import CaseDetail, CaseOpen, CasePage, CasePatch, EventOut
from discharge_bridge.cases.service import open_case_by_hand
from discharge_bridge.cases.updates import update_case
from discharge_bridge.db import utcnow
from discharge_bridge.deps import (
    Actor,
    CurrentCase,
    CurrentPrincipal,
    IfMatch,
    SessionDep,
    SourceScope,
    expected_version,
    require_by_method,
    set_etag,
)
from discharge_bridge.keyset import InvalidCursor
from discharge_bridge.sources.service import SourceNotFound, narrow_scope
from discharge_bridge.users.roles import Permission
from discharge_bridge.validation import Line, Offset, PageSize
from discharge_bridge.worklists.case_views import detail, source_names, summary

router = APIRouter(
    prefix="/api/v1",
    tags=["cases"],
    dependencies=[Depends(require_by_method(Permission.read_cases, Permission.coordinate))],
)


def _detail(session: SessionDep, case: Case, response: Response) -> CaseDetail:
    session.flush()  # the version counter moves at flush: the ETag must show the stored version
    set_etag(response, case.version)
    return detail(session, case, utcnow())


@router.get("/cases", response_model=CasePage)
def cases_index(
    request: Request,
    session: SessionDep,
    scope: SourceScope,
    status_: Annotated[CaseStatus | None, Query(alias="status")] = None,
    priority: Priority | None = None,
    source: Annotated[Line | None, Query(max_length=64, description="Only this source (hospital) name.")] = None,
    coordinator: Annotated[Line | None, Query()] = None,
    limit: Annotated[PageSize, Query(le=500)] = 50,
    after: Annotated[Line | None, Query(description="The `next_after` of the previous page.")] = None,
) -> CasePage:
    """Cases, highest priority first, then the longest open; paged by cursor (``next_after``)."""
    if "offset" in request.query_params:  # gone: a client still sending it would get page 1 again and again
        raise InvalidInput(("query", "offset"), "pages go by keyset: pass the previous page's next_after as after")
    try:
        scope = narrow_scope(session, source, scope)
    except SourceNotFound as exc:
        raise NotFound("source", repr(source)) from exc
    try:
        page = list_cases(
            session,
            source_ids=scope,
            status=status_,
            priority=priority,
            coordinator=coordinator,
            limit=limit,
            after=after,
        )
    except InvalidCursor as exc:
        raise InvalidInput(("query", "after"), str(exc)) from None
    names = source_names(session)
    return CasePage(
        total=page.total,
        total_more=page.total_more,
        items=[summary(c, names.get(c.source_id, "?")) for c in page.items],
        next_after=page.next_after,
    )


@router.post(
    "/cases",
    response_model=CaseDetail,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "The admission already had a case: that case.", "model": CaseDetail}},
)
def cases_open(
    body: CaseOpen, session: SessionDep, response: Response, actor: Actor, principal: CurrentPrincipal
) -> CaseDetail:
    """Open a case by hand for any admission (201), or return the one it already has (200).

    A coordinator who opens a case takes it on (as on the worklist page)."""
    case, created = open_case_by_hand(
        session,
        source_name=body.source,
        encounter_fhir_id=body.encounter,
        actor=actor,
        principal=principal,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return _detail(session, case, response)


@router.get("/cases/{case_id}", response_model=CaseDetail)
def case_detail(case: CurrentCase, session: SessionDep, response: Response) -> CaseDetail:
    """The case with its flags and their evidence, readiness dates, bed-days lost and counts."""
    return _detail(session, case, response)


@router.patch("/cases/{case_id}", response_model=CaseDetail)
def case_patch(
    case: CurrentCase, body: CasePatch, session: SessionDep, response: Response, actor: Actor, if_match: IfMatch
) -> CaseDetail:
    """Assign, set readiness dates (as a person), close / cancel (with an outcome) or reopen.

    If-Match (or ``version``) is optional here; when given, a stale one is a 409.
    """
    expected = expected_version("case", if_match, body.version, required=False)
    values = {f: getattr(body, f) for f in body.model_fields_set - {"version"}}
    update_case(session, case, values, actor=actor, expected_version=expected)
    return _detail(session, case, response)


@router.get("/cases/{case_id}/timeline", response_model=list[EventOut])
def case_timeline(
    case: CurrentCase,
    session: SessionDep,
    limit: Annotated[PageSize, Query(le=1000)] = 500,
    offset: Annotated[Offset, Query()] = 0,
) -> list[EventOut]:
    """The case's event log, oldest first: who changed what, when, old -> new."""
    assert case.id is not None
    return [
        EventOut.model_validate(e, from_attributes=True) for e in timeline(session, case.id, limit=limit, offset=offset)
    ]


router.include_router(assessment_router)
