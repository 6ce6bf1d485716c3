"""The hospital IT page: each source's sync status, sync now, dead letters (with their details and
replay), the assessment queue, conformance problems, and the connection check. Adding and
changing a source: ``it_sources``. Every POST here needs ``manage_sources`` and the session's
CSRF token.

With htmx a POST answers with the part of the page it changed; without JavaScript it answers with
the whole page showing the result. While a sync runs, its source's card asks for itself again
every few seconds (htmx), so the result shows up when the pass ends.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, Response

from discharge_bridge.audit import AdminAction, Target, record_admin_action
from discharge_bridge.connections.deadletters import letter_detail
from discharge_bridge.connections.status import (
    DeadLetterNotFound,
    replay_dead_letter,
    replay_open_letters,
    run_check,
    source_statuses,
)
from discharge_bridge.db import utcnow
from discharge_bridge.deps import SessionDep, SettingsDep
from discharge_bridge.ingest.deadletters import ReplayOutcome
from discharge_bridge.scheduling import sync_now
from discharge_bridge.ui import i18n, it_sources
from discharge_bridge.ui.it_common import SourceManager, answer, context, replay_detail, source_of
from discharge_bridge.ui.templating import PageRoute, language_of, render
from discharge_bridge.validation import Id, Key

router = APIRouter(route_class=PageRoute, include_in_schema=False)
LetterId = Annotated[Id, Path()]
SourceName = Annotated[Key, Path()]
router.include_router(it_sources.router)


@router.get("/it", response_class=HTMLResponse)
def it_page(request: Request, principal: SourceManager, session: SessionDep) -> Response:
    i18n.set_language(language_of(request))
    statuses = source_statuses(session, source_ids=principal.scope, now=utcnow())
    return render(request, "it.html", context(statuses))


@router.get("/it/sources/{name}", response_class=HTMLResponse)
def source_card(request: Request, name: SourceName, principal: SourceManager, session: SessionDep) -> Response:
    """One source's card (what a running sync's card asks for every few seconds)."""
    return answer(request, session, principal, source_of(session, principal, name))


@router.post("/it/sources/{name}/check", response_class=HTMLResponse)
def check_connection(request: Request, name: SourceName, principal: SourceManager, session: SessionDep) -> Response:
    """Run the connection check now (an EHR gets a short timeout; a file source gets the folder check)."""
    source = source_of(session, principal, name)
    report = run_check(source)
    return answer(request, session, principal, source, checks={source.name: report})


@router.post("/it/sources/{name}/sync", response_class=HTMLResponse)
def sync_source_now(
    request: Request,
    name: SourceName,
    principal: SourceManager,
    session: SessionDep,
    settings: SettingsDep,
    background: BackgroundTasks,
) -> Response:
    """One pass of the source and the assessment after it, run once this answer is sent."""
    source = source_of(session, principal, name)
    i18n.set_language(language_of(request))
    if sync_now.request(source.name, by=principal.username):
        record_admin_action(session, principal.username, AdminAction.source_sync_now, Target("source", source.name))
        background.add_task(sync_now.run, source.name, settings)
        notice = i18n.gettext("Sync requested: it runs now, and this card shows the result when it ends.")
    else:
        notice = i18n.gettext("A sync of this source is already waiting or running: its result shows here.")
    return answer(request, session, principal, source, notices={source.name: [notice]}, status_code=202)


def _notice(outcome: ReplayOutcome) -> str:
    values = {"id": outcome.dead_letter_id, "detail": replay_detail(outcome.detail)}
    if outcome.resolved:
        return i18n.gettext("Dead letter %(id)s resolved: %(detail)s") % values
    return i18n.gettext("Dead letter %(id)s is still a dead letter: %(detail)s") % values


@router.get("/it/deadletters/{letter_id}", response_class=HTMLResponse)
def dead_letter(request: Request, letter_id: LetterId, principal: SourceManager, session: SessionDep) -> Response:
    """One dead letter: the resource, the field at fault, the reason, and the record without identity."""
    try:
        detail = letter_detail(session, letter_id, source_ids=principal.scope)
    except DeadLetterNotFound:
        raise HTTPException(404, i18n.gettext("No such dead letter among yours: %(id)s") % {"id": letter_id}) from None
    i18n.set_language(language_of(request))
    title = i18n.gettext("Dead letter %(id)s") % {"id": letter_id}
    return render(request, "it/letter.html", {"title": title, "letter": detail, "row": detail.row})


@router.post("/it/deadletters/{letter_id}/replay", response_class=HTMLResponse)
def replay_one(request: Request, letter_id: LetterId, principal: SourceManager, session: SessionDep) -> Response:
    try:
        source, outcomes = replay_dead_letter(session, letter_id, source_ids=principal.scope, actor=principal.username)
    except DeadLetterNotFound:
        raise HTTPException(404, i18n.gettext("No such dead letter among yours: %(id)s") % {"id": letter_id}) from None
    i18n.set_language(language_of(request))
    return answer(request, session, principal, source, notices={source.name: [_notice(o) for o in outcomes]})


@router.post("/it/sources/{name}/replay", response_class=HTMLResponse)
def replay_all(request: Request, name: SourceName, principal: SourceManager, session: SessionDep) -> Response:
    source = source_of(session, principal, name)
    outcomes = replay_open_letters(session, source, actor=principal.username)
    i18n.set_language(language_of(request))
    notices = [_notice(o) for o in outcomes] or [i18n.gettext("No open dead letters to replay.")]
    return answer(request, session, principal, source, notices={source.name: notices})
