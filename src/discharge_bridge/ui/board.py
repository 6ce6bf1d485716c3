"""The bed manager's board: patients still in a bed, medically ready first, with delays and barriers;
its CSV export and its two charts (ready-to-discharge delay, handoffs by destination)."""

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
from discharge_bridge.deps import SessionDep, require
from discharge_bridge.sources.models import Source
from discharge_bridge.sources.service import SourceNotFound
from discharge_bridge.ui import i18n
from discharge_bridge.ui.case_labels import label
from discharge_bridge.ui.charts import Series, chart
from discharge_bridge.ui.templating import PageRoute, language_of, render
from discharge_bridge.users.principal import Principal
from discharge_bridge.users.roles import Permission
from discharge_bridge.worklists.board import (
    Board,
    BoardFilter,
    BoardRow,
    board,
    board_filter,
    board_timezone,
    delay_series,
    handoff_series,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)
BoardViewer = Annotated[Principal, Depends(require(Permission.view_board))]
Hospital = Annotated[str | None, Query(max_length=64)]
Ward = Annotated[str | None, Query(max_length=200)]
ROWS_SHOWN = 500
WEEKS = 12


def _filter(
    session: SessionDep, principal: Principal, hospital: str | None, ward: str | None
) -> tuple[BoardFilter, list[Source], Source | None]:
    """The filter for the caller's hospitals; a hospital outside them is 404, as if it did not exist."""
    try:
        return board_filter(session, principal.scope, hospital, ward)
    except SourceNotFound:
        raise HTTPException(404, i18n.gettext("No such hospital among yours: %(name)s") % {"name": hospital}) from None


def _week_label(day: date) -> str:
    return format_date(day, "d MMM", locale=i18n.current_language())


def _charts(session: SessionDep, flt: BoardFilter, tz: str) -> dict[str, object]:
    now = utcnow()
    delays = delay_series(session, flt, now=now, tz=tz, weeks=WEEKS)
    handoffs = handoff_series(session, flt, now=now, tz=tz, weeks=WEEKS)
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
    request: Request, principal: BoardViewer, session: SessionDep, hospital: Hospital = None, ward: Ward = None
) -> Response:
    i18n.set_language(language_of(request))
    flt, sources, chosen = _filter(session, principal, hospital, ward)
    result: Board = board(session, flt, now=utcnow(), limit=ROWS_SHOWN)
    tz = board_timezone([chosen] if chosen else sources)
    query = urlencode({k: v for k, v in (("hospital", hospital), ("ward", ward)) if v})
    context = {
        "title": i18n.gettext("Bed board"),
        "board": result,
        "sources": sources,
        "hospital": chosen.name if chosen else "",
        "ward": flt.ward or "",
        "csv_url": "/board.csv" + (f"?{query}" if query else ""),
        "rows_shown": ROWS_SHOWN,
        "charts": _charts(session, flt, tz),
        "label": label,
    }
    return render(request, "board.html", context)


def _local(value: datetime | None, tz: str) -> str:
    return value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M") if value else ""


def _cell(text: str) -> str:
    """Defuse a value a spreadsheet would run as a formula (a ward name from the EHR is not ours to trust)."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv_line(row: BoardRow) -> list[str]:
    barriers = "; ".join(
        f"{label('barrier', b.code)} ({b.owner or '—'}, {_local(b.started_at, row.timezone)[:10]})"
        for b in row.barriers
    )
    cells = [
        row.hospital,
        row.ward or "",
        row.bed or "",
        row.patient,
        row.encounter,
        _local(row.admitted_at, row.timezone),
        _local(row.medically_ready_at, row.timezone),
        label("date_source", row.medically_ready_source) if row.medically_ready_source else "",
        _local(row.expected_discharge_at, row.timezone),
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
    "Encounter (FHIR id)",
    "Admitted",
    "Medically ready",
    "Medically ready: source",
    "Expected discharge",
    "Days delayed",
    "Open barriers",
    "Destination",
    "Handoff status",
)


@router.get("/board.csv")
def board_csv(
    request: Request, principal: BoardViewer, session: SessionDep, hospital: Hospital = None, ward: Ward = None
) -> Response:
    """Every row of the board (no display limit), UTF-8 with a BOM so Excel reads Cyrillic; no names."""
    i18n.set_language(language_of(request))
    flt, _, _ = _filter(session, principal, hospital, ward)
    result = board(session, flt, now=utcnow(), limit=None)
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer)
    writer.writerow([i18n.gettext(h) for h in CSV_HEADER])
    writer.writerows(_csv_line(r) for r in result.rows)
    stamp = utcnow().strftime("%Y%m%d-%H%M")
    return Response(
        buffer.getvalue().encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="bed-board-{stamp}.csv"'},
    )
