"""The psychologist's pages: the cases referred to a psychologist, and one such case in a reduced view
(the person, the referral, the services delivered) where they record their sessions.

A case reaches these pages only through ``deps.get_case_or_404``, whose rule (``deps.visible_case``)
lets a psychologist see a case only while it has a live referral to a psychologist: any other case
is a 404 page. Each view that shows the person is written to the access log.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from discharge_bridge.cases.delivered.repository import get_service_delivered
from discharge_bridge.cases.delivered.service import may_strike, strike_service
from discharge_bridge.cases.errors import NotFound
from discharge_bridge.cases.models import Case
from discharge_bridge.cases.referrals.person import briefs
from discharge_bridge.cases.referrals.psychology import psychology_cases
from discharge_bridge.db import utcnow
from discharge_bridge.deps import SessionDep, SettingsDep, get_case_or_404, log_view, require
from discharge_bridge.sources.service import list_sources
from discharge_bridge.ui import i18n
from discharge_bridge.ui.case_common import CasePageRoute, Form
from discharge_bridge.ui.portal_labels import flash, label
from discharge_bridge.ui.services_delivered import record_from_form
from discharge_bridge.ui.services_delivered_view import delivered_section
from discharge_bridge.ui.templating import language_of, render
from discharge_bridge.users.principal import Principal
from discharge_bridge.users.roles import Permission
from discharge_bridge.validation import Id

# Refused forms get the short problem page, never the coordinator's case page (ui.case.CaseFormRoute).
router = APIRouter(route_class=CasePageRoute, include_in_schema=False)
Psychologist = Annotated[Principal, Depends(require(Permission.psychology))]
PSYCHOLOGISTS = [Depends(require(Permission.psychology))]
PsychologyCase = Annotated[Case, Depends(get_case_or_404)]
LIST_ROUTE = "ui.psychology"
CASE_ROUTE = "ui.psychology.case"


@router.get("/psychology", dependencies=PSYCHOLOGISTS)
def psychology_page(request: Request, session: SessionDep, principal: Psychologist) -> Response:
    rows = psychology_cases(session, source_ids=principal.scope, today=utcnow().date(), limit=500)
    log_view(session, principal, LIST_ROUTE, [(r.source_id, r.patient_fhir_id) for r in rows])
    return render(request, "psychology.html", {"rows": rows, "label": label})


@router.get("/psychology/cases/{case_id}", dependencies=PSYCHOLOGISTS)
def psychology_case_page(
    request: Request,
    case: PsychologyCase,
    session: SessionDep,
    settings: SettingsDep,
    principal: Psychologist,
    done: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    assert case.id is not None
    i18n.set_language(language_of(request))
    now = utcnow()
    timezone = _timezone(session, case)
    context: dict[str, Any] = {
        "case_id": case.id,
        "person": briefs(session, [case], now.date())[case.id],
        "referrals": psychology_cases(session, source_ids=principal.scope, today=now.date(), case_id=case.id),
        "delivered": delivered_section(
            session, settings, case, principal, timezone, base=f"/psychology/cases/{case.id}/services"
        ),
        "label": label,
        "flash": flash(done),
        "refused": None,
    }
    log_view(session, principal, CASE_ROUTE, [(case.source_id, case.patient_fhir_id)])
    return render(request, "psychology/case.html", context)


@router.post("/psychology/cases/{case_id}/services", dependencies=PSYCHOLOGISTS)
def psychology_service_add(
    case: PsychologyCase, session: SessionDep, settings: SettingsDep, principal: Psychologist, form: Form
) -> RedirectResponse:
    assert case.id is not None
    record_from_form(session, settings, case, principal, form, _timezone(session, case))
    return RedirectResponse(f"/psychology/cases/{case.id}?done=service_recorded#services", status_code=303)


@router.post("/psychology/cases/{case_id}/services/{delivered_id}/strike", dependencies=PSYCHOLOGISTS)
def psychology_service_strike(
    case: PsychologyCase, delivered_id: Annotated[Id, Path()], session: SessionDep, principal: Psychologist
) -> RedirectResponse:
    """A psychologist strikes out only what they recorded themselves."""
    assert case.id is not None
    row = get_service_delivered(session, delivered_id, source_ids=principal.scope)
    if row is None or row.case_id != case.id or not may_strike(row, actor=principal.username, role=principal.role):
        raise NotFound("service delivered", delivered_id)
    strike_service(session, row, actor=principal.username)
    return RedirectResponse(f"/psychology/cases/{case.id}?done=service_struck#services", status_code=303)


def _timezone(session: SessionDep, case: Case) -> str:
    return list_sources(session, source_ids=[case.source_id])[0].timezone
