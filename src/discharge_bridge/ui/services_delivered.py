"""The "Services delivered" section (of the case page and of the psychologist's case page) and the
case page's forms to record a service and to strike one out.

Each POST calls the same service as the API (``cases.delivered.service``) and redirects back to the
section (PRG). The kinds offered are those of the catalogue the reader's role may record.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import RedirectResponse

from discharge_bridge.cases.delivered.repository import get_service_delivered
from discharge_bridge.cases.delivered.service import record_service, strike_service
from discharge_bridge.cases.errors import NotFound
from discharge_bridge.cases.models import Case
from discharge_bridge.config import Settings
from discharge_bridge.deps import SessionDep, SettingsDep, require
from discharge_bridge.sources.service import list_sources
from discharge_bridge.ui.case import CaseFormRoute
from discharge_bridge.ui.case_common import Form, PageCase, back_to_case, local_datetime, text
from discharge_bridge.users.principal import Principal
from discharge_bridge.users.roles import Permission
from discharge_bridge.validation import Id

router = APIRouter(route_class=CaseFormRoute, include_in_schema=False)
ANCHOR = "services"
RECORDERS = [Depends(require(Permission.record_services))]
Recorder = Annotated[Principal, Depends(require(Permission.record_services))]


def record_from_form(
    session: SessionDep, settings: Settings, case: Case, principal: Principal, form: Any, timezone: str
) -> None:
    at: datetime | None = local_datetime(text(form, "delivered_at"), timezone, "delivered_at")
    record_service(
        session,
        case,
        kind=text(form, "kind"),
        delivered_at=at,
        actor=principal.username,
        role=principal.role,
        note=text(form, "note") or None,
        mappings_dir=settings.mappings_dir,
        loc="form",
    )


@router.post("/cases/{case_id}/services", dependencies=RECORDERS)
def service_add(
    case: PageCase, session: SessionDep, settings: SettingsDep, principal: Recorder, form: Form
) -> RedirectResponse:
    assert case.id is not None
    record_from_form(session, settings, case, principal, form, _timezone(session, case))
    return back_to_case(case.id, "service_recorded", ANCHOR)


@router.post("/cases/{case_id}/services/{delivered_id}/strike", dependencies=RECORDERS)
def service_strike(
    case: PageCase,
    delivered_id: Annotated[Id, Path()],
    session: SessionDep,
    principal: Recorder,
) -> RedirectResponse:
    assert case.id is not None
    row = get_service_delivered(session, delivered_id, source_ids=principal.scope)
    if row is None or row.case_id != case.id:
        raise NotFound("service delivered", delivered_id)
    strike_service(session, row, actor=principal.username)
    return back_to_case(case.id, "service_struck", ANCHOR)


def _timezone(session: SessionDep, case: Case) -> str:
    from_sources = list_sources(session, source_ids=[case.source_id])
    return from_sources[0].timezone
