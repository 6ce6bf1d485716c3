"""The access log page (admins): who viewed which patient, searched by person, patient, hospital, dates."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from discharge_bridge.access import AccessQuery, search_access
from discharge_bridge.deps import SessionDep, require
from discharge_bridge.sources.service import list_sources
from discharge_bridge.ui import audit
from discharge_bridge.ui.day_range import DayRange
from discharge_bridge.ui.templating import PageRoute, render
from discharge_bridge.users.principal import Principal
from discharge_bridge.users.roles import Permission

router = APIRouter(route_class=PageRoute, include_in_schema=False)
Auditor = Annotated[Principal, Depends(require(Permission.audit_access))]
PAGE = 100
router.include_router(audit.router)  # the administration audit page, linked from this one


@router.get("/access-log", response_class=HTMLResponse)
def access_log_page(
    request: Request,
    principal: Auditor,
    session: SessionDep,
    username: Annotated[str, Query(max_length=200)] = "",
    source: Annotated[str, Query(max_length=200)] = "",
    patient: Annotated[str, Query(max_length=64)] = "",
    since: Annotated[str, Query(max_length=10)] = "",
    until: Annotated[str, Query(max_length=10)] = "",
    before_id: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """Dates are whole days in UTC (``until`` inclusive); a date that does not parse is ignored and said so."""
    sources = list_sources(session, source_ids=principal.scope)
    by_name = {s.name: s for s in sources}
    days = DayRange.read(since, until)
    chosen = by_name.get(source)
    query = AccessQuery(
        username=username or None,
        source_id=chosen.id if chosen is not None else None,
        patient_fhir_id=patient or None,
        since=days.since,
        until=days.until,
        before_id=before_id,
        limit=PAGE,
    )
    scope = tuple(principal.scope) if principal.scope is not None else None
    rows = search_access(session, query, source_ids=scope)
    filters = {"username": username, "source": source, "patient": patient, "since": since, "until": until}
    kept = {k: v for k, v in filters.items() if v}
    names = {s.id: s.name for s in sources}
    api = {k: v for k, v in kept.items() if k in ("username", "source", "patient")} | days.api_params()
    return render(
        request,
        "access.html",
        {
            "rows": rows,
            "sources": sources,
            "source_names": names,
            "filters": filters,
            "unknown_source": bool(source) and chosen is None,
            "bad_dates": days.bad,
            "csv_url": "/api/v1/access-log.csv" + (f"?{urlencode(api)}" if api else ""),
            "next_url": f"/access-log?{urlencode({**kept, 'before_id': rows[-1].id})}" if len(rows) == PAGE else None,
        },
    )
