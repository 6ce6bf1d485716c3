"""GET /api/v1/figures(.csv): the figures a city reports; GET /api/v1/sitrep(.csv): one hospital's
daily situation report. Counts only, over the caller's hospitals: no patient is named, so nothing
goes to the access log. A query parameter the route does not know is refused (422, naming it)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response

from discharge_bridge.cases.errors import InvalidInput
from discharge_bridge.db import utcnow
from discharge_bridge.deps import CurrentPrincipal, SessionDep, SettingsDep, require
from discharge_bridge.sources.models import Source
from discharge_bridge.sources.service import SourceNotFound, list_sources, narrow_scope
from discharge_bridge.spreadsheet import write_rows
from discharge_bridge.users.principal import Principal
from discharge_bridge.users.roles import Permission
from discharge_bridge.validation import Day, Key
from discharge_bridge.worklists import city, sitrep
from discharge_bridge.worklists.city import CityFigures, Grouping
from discharge_bridge.worklists.periods import InvalidPeriod, period_of
from discharge_bridge.worklists.sitrep import SitRep

router = APIRouter(prefix="/api/v1", tags=["figures"], dependencies=[Depends(require(Permission.view_figures))])

FIGURE_PARAMS = {"from", "to", "group", "source"}
SITREP_PARAMS = {"source", "date"}
From = Annotated[Day | None, Query(alias="from", description="First local day (YYYY-MM-DD); default 4 weeks ago.")]
To = Annotated[Day | None, Query(description="Last local day, included (YYYY-MM-DD); default today.")]
Group = Annotated[Grouping, Query(description="hospital, ward, coordinator or week (ISO, local time).")]
OneSource = Annotated[Key | None, Query(description="Only this source (hospital), among yours.")]


def known_params(request: Request, allowed: set[str]) -> None:
    for name in request.query_params:
        if name not in allowed:
            raise InvalidInput(("query", name), f"unknown parameter; known: {', '.join(sorted(allowed))}")


def covered(session: SessionDep, principal: Principal, source: str | None) -> list[Source]:
    """The caller's hospitals, or the one named among them (404 otherwise, as if it did not exist)."""
    try:
        ids = narrow_scope(session, source, principal.scope)
    except SourceNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    return list_sources(session, source_ids=ids)


@dataclass(frozen=True)
class Question:
    start: date | None
    end: date | None
    group: Grouping
    source: str | None


def compute(session: SessionDep, settings: SettingsDep, principal: Principal, asked: Question) -> CityFigures:
    sources = covered(session, principal, asked.source)
    period = period_of(asked.start, asked.end, utcnow().date())
    try:
        return city.city_figures(
            session, sources, period, asked.group, figures_max_age=settings.list_figures_max_age_seconds
        )
    except InvalidPeriod as exc:
        raise InvalidInput(("query", exc.param), exc.message) from None


@router.get("/figures", response_model=CityFigures)
def get_figures(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    start: From = None,
    to: To = None,
    group: Group = Grouping.hospital,
    source: OneSource = None,
) -> CityFigures:
    """Flag to first visit, to plan and to handoff; medically ready to discharge and bed-days lost;
    referrals by category and outcome; receivers' response time; services delivered and to how many
    people: per group, with count, median and p90 of each duration (nearest rank), and overall."""
    known_params(request, FIGURE_PARAMS)
    return compute(session, settings, principal, Question(start, to, group, source))


@router.get("/figures.csv", response_class=Response)
def export_figures(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    start: From = None,
    to: To = None,
    group: Group = Grouping.hospital,
    source: OneSource = None,
) -> Response:
    """The same figures as a long table: figure, group, detail, measure, value."""
    known_params(request, FIGURE_PARAMS)
    figures = compute(session, settings, principal, Question(start, to, group, source))
    buffer = io.StringIO()
    write_rows(buffer, city.CSV_HEADER, city.figure_rows(figures))
    name = f"figures-{group.value}-{figures.period.start.isoformat()}-{figures.period.end.isoformat()}.csv"
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


SourceParam = Annotated[Key, Query(description="The source (hospital), among yours.")]
ReportDay = Annotated[Day | None, Query(alias="date", description="The local day (YYYY-MM-DD); default yesterday.")]


def report(session: SessionDep, principal: Principal, source: str, day: date | None) -> SitRep:
    hospital = covered(session, principal, source)[0]
    if day is None:
        day = utcnow().astimezone(ZoneInfo(hospital.timezone)).date() - timedelta(days=1)
    return sitrep.sitrep(session, hospital, day)


@router.get("/sitrep", response_model=SitRep)
def get_sitrep(
    request: Request, session: SessionDep, principal: CurrentPrincipal, source: SourceParam, day: ReportDay = None
) -> SitRep:
    """The daily situation report of one hospital (after the NHS discharge SitRep): at midnight local
    after ``date``, the patients medically ready but not discharged, by delay reason and destination,
    those delayed 7+ and 21+ days; the patients discharged that day by destination."""
    known_params(request, SITREP_PARAMS)
    return report(session, principal, source, day)


@router.get("/sitrep.csv", response_class=Response)
def export_sitrep(
    request: Request, session: SessionDep, principal: CurrentPrincipal, source: SourceParam, day: ReportDay = None
) -> Response:
    """The report as CSV: hospital, date, census_at, section, item, patients."""
    known_params(request, SITREP_PARAMS)
    found = report(session, principal, source, day)
    buffer = io.StringIO()
    write_rows(buffer, sitrep.CSV_HEADER, sitrep.sitrep_rows(found))
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="sitrep-{found.source}-{found.day.isoformat()}.csv"'},
    )
