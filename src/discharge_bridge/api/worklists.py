"""GET /api/v1/worklist and GET /api/v1/board.

Both show patients' identity (names, MRNs), so each answer is one entry in the access log with
the patients it listed. A query parameter the route does not know is refused (422, naming it): a
misspelt filter must not quietly return everything.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from discharge_bridge.cases.errors import InvalidInput
from discharge_bridge.db import utcnow
from discharge_bridge.deps import (
    CurrentPrincipal,
    SessionDep,
    SettingsDep,
    SourceScope,
    log_view,
    require,
    require_by_method,
)
from discharge_bridge.risk import RuleSetError, loading
from discharge_bridge.sources.service import SourceNotFound, narrow_scope
from discharge_bridge.users.roles import Permission
from discharge_bridge.validation import Line, PageSize
from discharge_bridge.worklists.board import (
    DESTINATIONS,
    BoardOut,
    InvalidBoardCursor,
    Readiness,
    board,
    board_filter,
    board_out,
)
from discharge_bridge.worklists.filters import CaseState, Due, InvalidFilter, Sort, WorklistQuery
from discharge_bridge.worklists.schemas import WorklistPage
from discharge_bridge.worklists.service import worklist

router = APIRouter(prefix="/api/v1")
_worklist = APIRouter(
    tags=["worklist"], dependencies=[Depends(require_by_method(Permission.read_cases, Permission.coordinate))]
)
_board = APIRouter(tags=["board"], dependencies=[Depends(require(Permission.view_board))])
Priority = Literal["high", "medium", "low"]
Destination = Literal[DESTINATIONS]  # type: ignore[valid-type]


def _known_params(request: Request, allowed: set[str]) -> None:
    for name in request.query_params:
        if name == "offset":
            raise InvalidInput(("query", name), "pages go by keyset: pass the previous page's next_after as after")
        if name not in allowed:
            raise InvalidInput(("query", name), f"unknown parameter; known: {', '.join(sorted(allowed))}")


def _rules_version(settings: SettingsDep) -> str:
    try:
        return loading.rule_set(settings.mappings_dir).version
    except RuleSetError as exc:
        raise HTTPException(503, f"the rule set cannot be loaded: {exc}") from None


WORKLIST_PARAMS = {
    "source", "q", "ward", "rule", "priority", "min_priority", "coordinator", "unassigned", "status", "due",
    "sort", "after", "limit", "counts",
}  # fmt: skip


@_worklist.get("/worklist", response_model=WorklistPage)
def get_worklist(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    scope: SourceScope,
    principal: CurrentPrincipal,
    source: Annotated[Line | None, Query(max_length=64, description="Only this source (hospital).")] = None,
    q: Annotated[Line | None, Query(description="Words of the name, or an MRN or other identifier (or part).")] = None,
    ward: Annotated[Line | None, Query()] = None,
    rule: Annotated[Line | None, Query(max_length=64, description="A rule of the rule set among the reasons.")] = None,
    priority: Priority | None = None,
    min_priority: Priority | None = None,
    coordinator: Annotated[Line | None, Query()] = None,
    unassigned: Annotated[bool, Query(description="No case yet, or a case without a coordinator.")] = False,
    status: Annotated[CaseState | None, Query(description="The case's status; `none`: no case yet.")] = None,
    due: Annotated[
        Due | None, Query(description="An active task of the case is overdue / due today / this week.")
    ] = None,
    sort: Sort = Sort.priority,
    after: Annotated[Line | None, Query(description="`next_after` of the previous page.")] = None,
    limit: Annotated[PageSize, Query(le=500)] = 50,
    counts: Annotated[bool, Query(description="Add the counts per filter value.")] = False,
) -> WorklistPage:
    """Current flagged admissions, highest priority first (or as sorted), each with the patient's
    name, MRN and the reasons with their evidence; keyset pages of ``limit``."""
    _known_params(request, WORKLIST_PARAMS)
    version = _rules_version(settings)
    try:
        source_ids = narrow_scope(session, source, scope)
    except SourceNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    try:
        query = WorklistQuery(
            search=q,
            ward=ward,
            rule=rule,
            priority=priority,
            min_priority=min_priority,
            coordinator=coordinator,
            unassigned=unassigned,
            status=status,
            due=due,
            sort=sort,
            after=after,
        )
        page = worklist(
            session,
            rules_version=version,
            source_ids=source_ids,
            limit=limit,
            query=query,
            now=utcnow(),
            mappings_dir=settings.mappings_dir,
            with_counts=counts,
            figures_max_age=settings.list_figures_max_age_seconds,
        )
    except InvalidFilter as exc:
        raise InvalidInput(("query", exc.param), exc.message) from None
    log_view(session, principal, "api.worklist", page.shown)
    return page


BOARD_PARAMS = {"hospital", "ward", "destination", "status", "after", "limit"}


@_board.get("/board", response_model=BoardOut)
def get_board(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    hospital: Annotated[Line | None, Query(max_length=64, description="Only this source (hospital).")] = None,
    ward: Annotated[Line | None, Query()] = None,
    destination: Annotated[Destination | None, Query(description="The planned handoff's; `none`: none yet.")] = None,
    status: Annotated[Readiness | None, Query(description="Where the ready date falls.")] = None,
    after: Annotated[Line | None, Query(description="`next_after` of the previous page.")] = None,
    limit: Annotated[PageSize, Query(le=5000)] = 100,
) -> BoardOut:
    """Every current inpatient of your hospitals (flagged or not): identity, ward and bed, the ready
    date (medically ready, else the expected discharge), delay, barriers and handoff; totals overall,
    per ward and per destination over every patient the filters keep (one aggregate query); keyset
    pages of ``limit`` rows."""
    _known_params(request, BOARD_PARAMS)
    try:
        flt, sources, _ = board_filter(
            session,
            principal.scope,
            hospital,
            ward,
            destination=destination,
            status=status,
            mappings_dir=settings.mappings_dir,
            rules_version=_rules_version(settings),
        )
    except SourceNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    try:
        result = board(
            session,
            flt,
            now=utcnow(),
            limit=limit,
            after=after,
            mappings_dir=settings.mappings_dir,
            figures_max_age=settings.list_figures_max_age_seconds,
            sources=sources,
        )
    except InvalidBoardCursor as exc:
        raise InvalidInput(("query", "after"), str(exc)) from None
    log_view(session, principal, "api.board", result.shown)
    return board_out(result)


router.include_router(_worklist)
router.include_router(_board)
