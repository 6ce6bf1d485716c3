"""The city's figures page: for a period and a grouping, a chart per figure (server-rendered SVG)
with its numbers in a table beside it, CSV links, and one hospital's daily situation report.
Counts only, over the reader's hospitals: no patient is named, so nothing goes to the access log."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from discharge_bridge.cases.delivered.catalogue import catalogue
from discharge_bridge.db import utcnow
from discharge_bridge.deps import SessionDep, SettingsDep, require
from discharge_bridge.sources.models import Source
from discharge_bridge.sources.service import SourceNotFound, list_sources, narrow_scope
from discharge_bridge.ui import i18n
from discharge_bridge.ui.case_labels import N_, label
from discharge_bridge.ui.charts import Series, chart
from discharge_bridge.ui.templating import PageRoute, language_of, render
from discharge_bridge.users.principal import Principal
from discharge_bridge.users.roles import Permission
from discharge_bridge.validation import YEAR_MAX, YEAR_MIN, Line
from discharge_bridge.worklists.city import CityFigures, DurationFigure, Grouping, Outcome, city_figures
from discharge_bridge.worklists.periods import InvalidPeriod, period_of
from discharge_bridge.worklists.sitrep import NONE_RECORDED, NOT_ARRANGED, NOT_RECORDED, SitRep, sitrep

router = APIRouter(route_class=PageRoute, include_in_schema=False)
FigureViewer = Annotated[Principal, Depends(require(Permission.view_figures))]

GROUPINGS = {
    "hospital": N_("Hospital"),
    "ward": N_("Ward"),
    "coordinator": N_("Coordinator"),
    "week": N_("Week"),
}
FIGURES = {
    "flag_to_first_visit": N_("Flag to first visit"),
    "flag_to_plan": N_("Flag to action plan"),
    "flag_to_handoff": N_("Flag to handoff completed"),
    "ready_to_discharge": N_("Medically ready to discharge"),
}
UNITS = {"hours": N_("hours"), "days": N_("days")}
OUTCOMES = {
    "completed": N_("Completed"),
    "rejected": N_("Rejected"),
    "cancelled": N_("Cancelled"),
    "open": N_("Open"),
}
CATEGORIES = {
    "home_care": N_("Home care"),
    "social_home": N_("Residential social home"),
    "gerontology_centre": N_("Gerontology centre"),
    "hospice": N_("Hospice and palliative care"),
    "other_facility": N_("Other care facility"),
    "psychologist": N_("Psychologist"),
    "legal_aid": N_("Legal aid"),
    "guardianship": N_("Guardianship authority"),
    "social_protection": N_("Social protection office"),
    "charity": N_("Charity fund"),
    "other": N_("Other"),
}
PLACES = {NOT_ARRANGED: N_("Not arranged"), NOT_RECORDED: N_("Not recorded"), NONE_RECORDED: N_("None recorded")}


def _group_label(grouping: Grouping, value: str | None, sources: dict[str, Source]) -> str:
    if value is None:
        return i18n.gettext("Not recorded")
    if grouping == Grouping.hospital and value in sources:
        return sources[value].hospital
    return value


def _place(value: str) -> str:
    return i18n.gettext(PLACES[value]) if value in PLACES else label("destination", value)


def _reason(value: str) -> str:
    return i18n.gettext(PLACES[value]) if value in PLACES else label("barrier", value)


def _kinds(settings: SettingsDep) -> dict[str, str]:
    language = i18n.current_language()
    return {entry.code: entry.label(language) for entry in catalogue(settings.mappings_dir)}


def _duration_chart(figure: DurationFigure, names: list[str]) -> Any:
    unit = i18n.gettext(UNITS[figure.unit])
    title = i18n.gettext(FIGURES[figure.name])
    return chart(
        title=title,
        summary=i18n.gettext("Bars: cases in each group. Lines: median and 90th percentile, in %(unit)s.")
        % {"unit": unit},
        labels=names,
        bars=[Series(i18n.gettext("Cases"), [float(g.cohort) for g in figure.groups])],
        lines=[
            Series(i18n.gettext("Median"), [g.median for g in figure.groups]),
            Series(i18n.gettext("90th percentile"), [g.p90 for g in figure.groups]),
        ],
        bar_unit=i18n.gettext("cases"),
        line_unit=unit,
    )


def _sections(figures: CityFigures, sources: dict[str, Source], kinds: dict[str, str]) -> dict[str, Any]:
    """Each chart with the rows of its table, in the reader's language."""

    def name(value: str | None) -> str:
        return _group_label(figures.grouping, value, sources)

    durations = [
        {
            "title": i18n.gettext(FIGURES[f.name]),
            "unit": i18n.gettext(UNITS[f.unit]),
            "svg": _duration_chart(f, [name(g.group) for g in f.groups]),
            "rows": [(name(g.group), g) for g in f.groups],
            "total": f.total,
        }
        for f in figures.durations
    ]
    lost_title = i18n.gettext("Bed-days lost")
    lost = {
        "title": lost_title,
        "svg": chart(
            title=lost_title,
            summary=i18n.gettext("Bars: days in a bed after being medically ready, of the period's discharges."),
            labels=[name(b.group) for b in figures.bed_days],
            bars=[Series(i18n.gettext("Bed-days lost"), [b.bed_days_lost for b in figures.bed_days])],
            bar_unit=i18n.gettext("days"),
        ),
        "rows": [(name(b.group), b) for b in figures.bed_days],
        "total": figures.bed_days_total,
    }
    categories = sorted({r.category for r in figures.referrals})
    outcomes = [o.value for o in Outcome]
    by_category = {c: dict.fromkeys(outcomes, 0) for c in categories}
    table: dict[tuple[str, str], dict[str, int]] = {}
    for r in figures.referrals:
        by_category[r.category][r.outcome] += r.count
        table.setdefault((name(r.group), r.category), dict.fromkeys(outcomes, 0))[r.outcome] += r.count
    referral_title = i18n.gettext("Referrals by service and outcome")
    category_names = [i18n.gettext(CATEGORIES[c]) if c in CATEGORIES else c for c in categories]
    referrals = {
        "title": referral_title,
        "svg": chart(
            title=referral_title,
            summary=i18n.gettext("Stacked bars: referrals sent in the period, by service category and outcome."),
            labels=category_names,
            bars=[Series(i18n.gettext(OUTCOMES[o]), [float(by_category[c][o]) for c in categories]) for o in outcomes],
            bar_unit=i18n.gettext("referrals"),
        ),
        "outcomes": [(o, i18n.gettext(OUTCOMES[o])) for o in outcomes],
        "rows": [
            (group, i18n.gettext(CATEGORIES[c]) if c in CATEGORIES else c, counts)
            for (group, c), counts in table.items()
        ],
    }
    response_title = i18n.gettext("Receivers' response time")
    responses = {
        "title": response_title,
        "svg": chart(
            title=response_title,
            summary=i18n.gettext("Bars: referrals sent to each organisation. Line: median hours to an answer."),
            labels=[r.name for r in figures.responses],
            bars=[Series(i18n.gettext("Referrals"), [float(r.requested) for r in figures.responses])],
            lines=[Series(i18n.gettext("Median"), [r.median_hours for r in figures.responses])],
            bar_unit=i18n.gettext("referrals"),
            line_unit=i18n.gettext("hours"),
        ),
        "rows": figures.responses,
    }
    kind_codes = sorted({d.kind for d in figures.delivered})
    groups = sorted({d.group or "" for d in figures.delivered})
    counts = {(d.group or "", d.kind): d.count for d in figures.delivered}
    delivered_title = i18n.gettext("Services delivered")
    delivered = {
        "title": delivered_title,
        "svg": chart(
            title=delivered_title,
            summary=i18n.gettext("Stacked bars: services delivered in the period, by kind."),
            labels=[name(g or None) for g in groups],
            bars=[Series(kinds.get(k, k), [float(counts.get((g, k), 0)) for g in groups]) for k in kind_codes],
            bar_unit=i18n.gettext("services"),
        ),
        "rows": [(name(d.group), kinds.get(d.kind, d.kind), d) for d in figures.delivered],
        "people": [(name(p.group), p.people) for p in figures.people],
        "people_total": figures.people_total,
    }
    return {
        "durations": durations,
        "lost": lost,
        "referrals": referrals,
        "responses": responses,
        "delivered": delivered,
    }


def _sitrep_view(report: SitRep) -> dict[str, Any]:
    return {
        "report": report,
        "reasons": [(_reason(code), n) for code, n in report.by_reason.items()],
        "destinations": [(_place(code), n) for code, n in report.by_destination.items()],
        "discharged": [(_place(code), n) for code, n in report.discharged_by_destination.items()],
        "csv_url": "/api/v1/sitrep.csv?" + urlencode({"source": report.source, "date": report.day.isoformat()}),
    }


@router.get("/figures", response_class=HTMLResponse)
def figures_page(
    request: Request,
    principal: FigureViewer,
    session: SessionDep,
    settings: SettingsDep,
    start: Annotated[date | None, Query(alias="from")] = None,
    to: date | None = None,
    group: Annotated[Line | None, Query(max_length=16)] = None,
    hospital: Annotated[Line | None, Query(max_length=64)] = None,
    day: Annotated[date | None, Query(alias="date")] = None,
) -> Response:
    i18n.set_language(language_of(request))
    if group and group not in GROUPINGS:
        raise HTTPException(422, f"{i18n.gettext('Please check')}: group")
    grouping = Grouping(group or Grouping.hospital.value)
    try:
        ids = narrow_scope(session, hospital or None, principal.scope)
    except SourceNotFound:
        raise HTTPException(404, i18n.gettext("No such hospital among yours: %(name)s") % {"name": hospital}) from None
    sources = list_sources(session, source_ids=ids)
    mine = list_sources(session, source_ids=principal.scope)
    try:
        period = period_of(start, to, utcnow().date())
        figures = city_figures(
            session, sources, period, grouping, figures_max_age=settings.list_figures_max_age_seconds
        )
    except InvalidPeriod as exc:
        raise HTTPException(422, f"{i18n.gettext('Please check')}: {exc.param}") from None
    chosen = sources[0] if len(sources) == 1 else None
    report = None
    if chosen is not None:
        report_day = day or utcnow().astimezone(ZoneInfo(chosen.timezone)).date() - timedelta(days=1)
        if not YEAR_MIN <= report_day.year <= YEAR_MAX:
            raise HTTPException(422, f"{i18n.gettext('Please check')}: date")
        report = _sitrep_view(sitrep(session, chosen, report_day))
    asked = {
        "from": figures.period.start.isoformat(),
        "to": figures.period.end.isoformat(),
        "group": grouping.value,
        **({"source": hospital} if hospital else {}),
    }
    context = {
        "title": i18n.gettext("Figures"),
        "figures": figures,
        "sources": mine,
        "hospital": hospital or "",
        "grouping": grouping.value,
        "groupings": [(g, i18n.gettext(text)) for g, text in GROUPINGS.items()],
        "group_heading": i18n.gettext(GROUPINGS[grouping.value]),
        "sections": _sections(figures, {s.name: s for s in sources}, _kinds(settings)),
        "csv_url": "/api/v1/figures.csv?" + urlencode(asked),
        "sitrep": report,
        "sitrep_hospital": chosen,
    }
    return render(request, "figures.html", context)
