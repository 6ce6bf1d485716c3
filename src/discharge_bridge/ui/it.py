"""The hospital IT page: each source's sync status, dead letters (with replay), conformance problems,
and the connection check. Every POST here needs ``manage_sources`` and the session's CSRF token.

With htmx a POST answers with the part of the page it changed; without JavaScript it answers with
the whole page showing the result.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from discharge_bridge.connections.check import CheckReport
from discharge_bridge.connections.status import (
    DeadLetterNotFound,
    SourceStatus,
    replay_dead_letter,
    replay_open_letters,
    run_check,
    source_statuses,
)
from discharge_bridge.db import utcnow
from discharge_bridge.deps import SessionDep, require
from discharge_bridge.ingest.deadletters import ReplayOutcome
from discharge_bridge.sources.models import Source
from discharge_bridge.sources.service import SourceNotFound, get_source
from discharge_bridge.ui import i18n
from discharge_bridge.ui.case_labels import N_
from discharge_bridge.ui.templating import PageRoute, language_of, render
from discharge_bridge.users.principal import Principal
from discharge_bridge.users.roles import Permission

router = APIRouter(route_class=PageRoute, include_in_schema=False)
SourceManager = Annotated[Principal, Depends(require(Permission.manage_sources))]

LABELS: dict[str, dict[str, str]] = {
    "mode": {"poll": N_("Polling"), "subscription": N_("Subscription"), "bulk": N_("Bulk export"), "file": N_("Files")},
    "run": {"ok": N_("Sync succeeded"), "failed": N_("Sync failed"), "running": N_("Sync running")},
    "check": {"ok": N_("OK"), "warning": N_("Warning"), "failed": N_("Problem")},
    "auth": {
        "none": N_("No authentication"),
        "bearer": N_("Bearer token"),
        "basic": N_("Basic (user name and password)"),
        "smart": N_("SMART Backend Services"),
    },
    "auth_name": {
        "token_env": N_("Token from environment variable"),
        "token_file": N_("Token from file"),
        "password_env": N_("Password from environment variable"),
        "password_file": N_("Password from file"),
        "private_key_file": N_("Private key file"),
    },
    # Names of the connection check's items (check.py and status.py); resource types stay as they are.
    "check_item": {
        "CapabilityStatement": N_("CapabilityStatement"),
        "FHIR version": N_("FHIR version"),
        "Authentication": N_("Authentication"),
        "Authenticated search": N_("Authenticated search"),
        "File source": N_("File source"),
        "Folder": N_("Folder"),
        "Readable records": N_("Readable records"),
    },
}


def it_label(kind: str, value: object) -> str:
    text = str(value)
    found = LABELS[kind].get(text)
    return i18n.gettext(found) if found else text


def duration(seconds: float | None) -> str:
    """A lag in the largest two units that matter: "45 s", "12 min", "3 h 5 min", "2 d 4 h"."""
    if seconds is None:
        return "—"
    s = max(int(seconds), 0)
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if s < 60:
        return i18n.gettext("%(n)s s") % {"n": s}
    if s < 3600:
        return i18n.gettext("%(n)s min") % {"n": minutes}
    if s < 86400:
        return i18n.gettext("%(h)s h %(m)s min") % {"h": hours, "m": minutes % 60}
    return i18n.gettext("%(d)s d %(h)s h") % {"d": days, "h": hours % 24}


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def _source(session: SessionDep, principal: Principal, name: str) -> Source:
    try:
        return get_source(session, name, source_ids=principal.scope)
    except SourceNotFound:
        raise HTTPException(404, i18n.gettext("No such source among yours: %(name)s") % {"name": name}) from None


def _context(statuses: list[SourceStatus], **extra: Any) -> dict[str, Any]:
    return {
        "title": i18n.gettext("Hospital IT"),
        "statuses": statuses,
        "it_label": it_label,
        "duration": duration,
        "checks": {},
        "notices": {},
        **extra,
    }


def _answer(
    request: Request,
    session: SessionDep,
    principal: Principal,
    source: Source,
    *,
    checks: dict[str, CheckReport] | None = None,
    notices: dict[str, list[str]] | None = None,
) -> Response:
    """The changed source's card (htmx) or the whole page, with the result shown in that card."""
    i18n.set_language(language_of(request))
    scope = [source.id] if _is_htmx(request) and source.id is not None else principal.scope
    statuses = source_statuses(session, source_ids=scope, now=utcnow())
    context = _context(statuses, checks=checks or {}, notices=notices or {})
    if _is_htmx(request):
        return render(request, "it/source.html", {**context, "status": statuses[0]})
    return render(request, "it.html", context)


@router.get("/it", response_class=HTMLResponse)
def it_page(request: Request, principal: SourceManager, session: SessionDep) -> Response:
    i18n.set_language(language_of(request))
    statuses = source_statuses(session, source_ids=principal.scope, now=utcnow())
    return render(request, "it.html", _context(statuses))


@router.post("/it/sources/{name}/check", response_class=HTMLResponse)
def check_connection(request: Request, name: str, principal: SourceManager, session: SessionDep) -> Response:
    """Run the connection check now (an EHR gets a short timeout; a file source gets the folder check)."""
    source = _source(session, principal, name)
    report = run_check(source)
    return _answer(request, session, principal, source, checks={source.name: report})


def _notice(outcome: ReplayOutcome) -> str:
    values = {"id": outcome.dead_letter_id, "detail": outcome.detail}
    if outcome.resolved:
        return i18n.gettext("Dead letter %(id)s resolved: %(detail)s") % values
    return i18n.gettext("Dead letter %(id)s is still a dead letter: %(detail)s") % values


@router.post("/it/deadletters/{letter_id}/replay", response_class=HTMLResponse)
def replay_one(request: Request, letter_id: int, principal: SourceManager, session: SessionDep) -> Response:
    try:
        source, outcomes = replay_dead_letter(session, letter_id, source_ids=principal.scope)
    except DeadLetterNotFound:
        raise HTTPException(404, i18n.gettext("No such dead letter among yours: %(id)s") % {"id": letter_id}) from None
    i18n.set_language(language_of(request))
    return _answer(request, session, principal, source, notices={source.name: [_notice(o) for o in outcomes]})


@router.post("/it/sources/{name}/replay", response_class=HTMLResponse)
def replay_all(request: Request, name: str, principal: SourceManager, session: SessionDep) -> Response:
    source = _source(session, principal, name)
    outcomes = replay_open_letters(session, source)
    i18n.set_language(language_of(request))
    notices = [_notice(o) for o in outcomes] or [i18n.gettext("No open dead letters to replay.")]
    return _answer(request, session, principal, source, notices={source.name: notices})
