"""The bed manager's board: every current inpatient, medically ready first, with delays and barriers;
totals per ward and per planned destination; its CSV export and its two charts (ready-to-discharge
delay, handoffs by destination). The page and the CSV show names and MRNs: each answer is one
entry in the access log with the patients it showed."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from typing import Annotated
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from babel.dates import format_date
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from discharge_bridge.cases.handoffs.models import DestinationType
from discharge_bridge.db import utcnow
from discharge_bridge.deps import SessionDep, SettingsDep, log_view, require
from discharge_bridge.risk import RuleSetError, loading
from discharge_bridge.sources.models import Source
from discharge_bridge.sources.service import SourceNotFound
from discharge_bridge.ui import i18n
from discharge_bridge.ui.case_labels import N_, label
from discharge_bridge.ui.charts import Series, chart
from discharge_bridge.ui.identity_labels import person_line, sex_label, stay_line
from discharge_bridge.ui.templating import PageRoute, language_of, render
from discharge_bridge.users.principal import Principal
from discharge_bridge.users.roles import Permission
from discharge_bridge.validation import Line
from discharge_bridge.worklists.board import (
    DESTINATIONS,
    NO_HANDOFF,
    Board,
    BoardFilter,
    BoardRow,
    InvalidBoardCursor,
    Readiness,
    board,
    board_filter,
    board_timezone,
    delay_series,
    handoff_series,
)
from discharge_bridge.worklists.figures import kept

router = APIRouter(route_class=PageRoute, include_in_schema=False)
BoardViewer = Annotated[Principal, Depends(require(Permission.view_board))]
Hospital = Annotated[Line | None, Query(max_length=64)]
Ward = Annotated[Line | None, Query()]
Destination = Annotated[str | None, Query(max_length=32)]
Status = Annotated[str | None, Query(max_length=16)]
ROWS_SHOWN = 100  # rows a page of the board shows; the next page goes by keyset (``after``)
WEEKS = 12


READINESS = {
    "delayed": N_("Delayed beyond ready"),
    "today": N_("Ready today"),
    "week": N_("Ready this week"),
    "later": N_("Ready later"),
    "undated": N_("No date yet"),
}
NO_HANDOFF_LABEL = N_("No handoff yet")


def _filter(
    session: SessionDep,
    settings: SettingsDep,
    principal: Principal,
    hospital: str | None,
    ward: str | None,
    destination: str | None = None,
    status: str | None = None,
) -> tuple[BoardFilter, list[Source], Source | None]:
    """The filter for the caller's hospitals; a hospital outside them is 404, as if it did not exist;
    a destination or status that is not one of the choices is 422 naming it."""
    if destination and destination not in DESTINATIONS:
        raise HTTPException(422, f"{i18n.gettext('Please check')}: destination")
    if status and status not in READINESS:
        raise HTTPException(422, f"{i18n.gettext('Please check')}: status")
    try:
        rules_version = loading.rule_set(settings.mappings_dir).version
    except RuleSetError as exc:
        raise HTTPException(503, f"the rule set cannot be loaded: {exc}") from None
    try:
        return board_filter(
            session,
            principal.scope,
            hospital,
            ward,
            destination=destination or None,
            status=Readiness(status) if status else None,
            mappings_dir=settings.mappings_dir,
            rules_version=rules_version,
        )
    except SourceNotFound:
        raise HTTPException(404, i18n.gettext("No such hospital among yours: %(name)s") % {"name": hospital}) from None


def destination_label(value: str | None) -> str:
    return i18n.gettext(NO_HANDOFF_LABEL) if value in (None, NO_HANDOFF) else label("destination", value)


def _week_label(day: date) -> str:
    return format_date(day, "d MMM", locale=i18n.current_language())


def _charts(session: SessionDep, flt: BoardFilter, tz: str, max_age: float) -> dict[str, object]:
    now = utcnow()
    key = ("board-series", str(session.get_bind().engine.url), repr(flt), tz, now.date())
    delays, handoffs = kept(
        key,
        max_age,
        session,
        lambda s: (
            delay_series(s, flt, now=now, tz=tz, weeks=WEEKS),
            handoff_series(s, flt, now=now, tz=tz, weeks=WEEKS),
        ),
    )
    labels = [_week_label(w.week_start) for w in delays]
    days, patients = i18n.gettext("days"), i18n.gettext("patients")
    delay_title = i18n.gettext("Ready-to-discharge delay per week")
    delay_svg = chart(
        title=delay_title,
        summary=i18n.gettext(
            "Bars: patients medically ready and still in a bed at the end of each week. "
            "Lines: median and mean days from medically ready to discharge of that week's discharges."
        ),
        labels=labels,
        bars=[Series(i18n.gettext("Still waiting"), [float(w.waiting) for w in delays])],
        lines=[
            Series(i18n.gettext("Median days"), [w.median_days for w in delays]),
            Series(i18n.gettext("Mean days"), [w.mean_days for w in delays]),
        ],
        bar_unit=patients,
        line_unit=days,
    )
    destinations = [(d, label("destination", d)) for d in DestinationType]
    handoff_title = i18n.gettext("Handoffs by destination per week")
    handoff_svg = chart(
        title=handoff_title,
        summary=i18n.gettext("Stacked bars: handoffs proposed each week, by destination."),
        labels=labels,
        bars=[Series(name, [float(w.counts[d]) for w in handoffs]) for d, name in destinations],
        bar_unit=i18n.gettext("handoffs"),
    )
    return {
        "delay": {
            "title": delay_title,
            "svg": delay_svg,
            "weeks": list(zip(labels, delays, strict=True)),
            "discharged": sum(w.discharged for w in delays),
        },
        "handoffs": {
            "title": handoff_title,
            "svg": handoff_svg,
            "destinations": destinations,
            "weeks": list(zip(labels, handoffs, strict=True)),
            "total": sum(sum(w.counts.values()) for w in handoffs),
        },
        "tz": tz,
    }


@router.get("/board", response_class=HTMLResponse)
def board_page(
    request: Request,
    principal: BoardViewer,
    session: SessionDep,
    settings: SettingsDep,
    hospital: Hospital = None,
    ward: Ward = None,
    destination: Destination = None,
    status: Status = None,
    after: Annotated[Line | None, Query(max_length=200)] = None,
) -> Response:
    i18n.set_language(language_of(request))
    flt, sources, chosen = _filter(session, settings, principal, hospital, ward, destination, status)

    def page(after: str | None) -> Board:
        return board(
            session,
            flt,
            now=utcnow(),
            limit=ROWS_SHOWN,
            after=after,
            mappings_dir=settings.mappings_dir,
            figures_max_age=settings.list_figures_max_age_seconds,
            sources=sources,
        )

    try:
        result = page(after)
    except InvalidBoardCursor:  # a stale or hand-made link: the first page rather than an error
        after = None
        result = page(None)
    log_view(session, principal, "ui.board", result.shown)
    tz = board_timezone([chosen] if chosen else sources)
    asked = (("hospital", hospital), ("ward", ward), ("destination", destination), ("status", status))
    query = urlencode({k: v for k, v in asked if v})
    context = {
        "title": i18n.gettext("Bed board"),
        "board": result,
        "sources": sources,
        "hospital": chosen.name if chosen else "",
        "ward": flt.ward or "",
        "destination": flt.destination or "",
        "status": status or "",
        "destinations": [(d, destination_label(d)) for d in DESTINATIONS],
        "statuses": [(s, i18n.gettext(text)) for s, text in READINESS.items()],
        "readiness": {s: i18n.gettext(text) for s, text in READINESS.items()},
        "destination_label": destination_label,
        "person_line": person_line,
        "stay_line": stay_line,
        "csv_url": "/board.csv" + (f"?{query}" if query else ""),
        "rows_shown": ROWS_SHOWN,
        "first_url": "/board" + (f"?{query}" if query else "") if after else None,
        "next_url": "/board?" + urlencode([*((k, v) for k, v in asked if v), ("after", result.next_after)])
        if result.next_after
        else None,
        "charts": _charts(session, flt, tz, settings.list_figures_max_age_seconds),
        "label": label,
    }
    return render(request, "board.html", context)


def _local(value: datetime | None, tz: str) -> str:
    return value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M") if value else ""


def _cell(text: str) -> str:
    """Defuse a value a spreadsheet would run as a formula (a ward or a name from the EHR is not ours to trust)."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv_line(row: BoardRow) -> list[str]:
    barriers = "; ".join(
        f"{label('barrier', b.code)} ({b.owner or '—'}, {_local(b.started_at, row.timezone)[:10]})"
        for b in row.barriers
    )
    person = row.person
    cells = [
        row.hospital,
        row.ward or "",
        row.bed or "",
        row.patient,
        (person.name or "") if person else "",
        (person.mrn or "") if person else "",
        sex_label(person.sex) if person else "",
        str(person.age) if person and person.age is not None else "",
        row.encounter,
        _local(row.admitted_at, row.timezone),
        str(person.length_of_stay_days) if person and person.length_of_stay_days is not None else "",
        _local(row.medically_ready_at, row.timezone),
        label("date_source", row.medically_ready_source) if row.medically_ready_source else "",
        _local(row.expected_discharge_at, row.timezone),
        label("date_source", row.expected_discharge_source) if row.expected_discharge_source else "",
        i18n.gettext(READINESS[row.readiness]),
        "" if row.days_delayed is None else f"{row.days_delayed:.1f}",
        barriers,
        label("destination", row.handoff.destination_type) if row.handoff else "",
        label("handoff_status", row.handoff.status) if row.handoff else "",
    ]
    return [_cell(c) for c in cells]


CSV_HEADER = (
    "Hospital",
    "Ward",
    "Bed",
    "Patient (FHIR id)",
    "Name",
    "MRN",
    "Sex",
    "Age",
    "Encounter (FHIR id)",
    "Admitted",
    "Days in hospital",
    "Medically ready",
    "Medically ready: source",
    "Expected discharge",
    "Expected discharge: source",
    "Readiness",
    "Days delayed",
    "Open barriers",
    "Destination",
    "Handoff status",
)


@router.get("/board.csv")
def board_csv(
    request: Request,
    principal: BoardViewer,
    session: SessionDep,
    settings: SettingsDep,
    hospital: Hospital = None,
    ward: Ward = None,
    destination: Destination = None,
    status: Status = None,
) -> Response:
    """Every row of the board as filtered (no display limit), UTF-8 with a BOM so Excel reads Cyrillic.
    Names and MRNs are in it: the export is one access-log entry with every patient in the file."""
    i18n.set_language(language_of(request))
    flt, sources, _ = _filter(session, settings, principal, hospital, ward, destination, status)
    result = board(session, flt, now=utcnow(), limit=None, mappings_dir=settings.mappings_dir, sources=sources)
    log_view(session, principal, "ui.board.csv", result.shown)
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer)
    writer.writerow([i18n.gettext(h) for h in CSV_HEADER])
    writer.writerows(_csv_line(r) for r in result.rows)
    stamp = utcnow().strftime("%Y%m%d-%H%M")
    return Response(
        buffer.getvalue().encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="bed-board-{stamp}.csv"', "Cache-Control": "no-store"},
    )
