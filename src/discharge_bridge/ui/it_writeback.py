"""A source's write-back on the hospital IT pages: on or off, what is pending, sent and refused (with
the EHR's OperationOutcome), and Retry for the refused items (CSRF-checked, audited)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, Response

from discharge_bridge.deps import SessionDep
from discharge_bridge.ehr.writeback.status import retry_failed, writeback_status
from discharge_bridge.ui import i18n
from discharge_bridge.ui.it_common import SourceManager, source_of
from discharge_bridge.ui.templating import PageRoute, language_of, render
from discharge_bridge.validation import Key

router = APIRouter(route_class=PageRoute, include_in_schema=False)
SourceName = Annotated[Key, Path()]


def _page(
    request: Request, session: SessionDep, principal: SourceManager, name: str, notice: str | None = None
) -> Response:
    i18n.set_language(language_of(request))
    source = source_of(session, principal, name)
    view = writeback_status(session, source)
    title = i18n.gettext("Write-back of %(name)s") % {"name": source.name}
    return render(request, "it/writeback.html", {"title": title, "source": source, "view": view, "notice": notice})


@router.get("/it/sources/{name}/writeback", response_class=HTMLResponse)
def writeback_page(request: Request, name: SourceName, principal: SourceManager, session: SessionDep) -> Response:
    return _page(request, session, principal, name)


@router.post("/it/sources/{name}/writeback/retry", response_class=HTMLResponse)
def writeback_retry(request: Request, name: SourceName, principal: SourceManager, session: SessionDep) -> Response:
    """The refused items are sent again at the source's next pass."""
    source = source_of(session, principal, name)
    count = retry_failed(session, source, actor=principal.username)
    i18n.set_language(language_of(request))
    notice = i18n.gettext("%(n)s refused items will be sent again at the next pass.") % {"n": count}
    return _page(request, session, principal, name, notice)
