"""The case page, its printable action plan, and the case page shown again after a refused form.

Reads go through the case's repository and views, scoped to the reader's hospitals (a case of
another hospital is a 404, as in the API); the forms post to ``ui/case_forms.py``. Each view shows
the patient's identity, so each records one access-log entry (``deps.log_view``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from discharge_bridge.cases.errors import NotFound, refused
from discharge_bridge.cases.models import Case
from discharge_bridge.cases.repository import get_case
from discharge_bridge.config import Settings
from discharge_bridge.db import get_engine, session_scope, utcnow
from discharge_bridge.deps import SessionDep, SettingsDep, log_view, settings_dep
from discharge_bridge.ui import i18n
from discharge_bridge.ui.case_common import CasePageRoute, PageCase, Reader, flash_message, refusal
from discharge_bridge.ui.case_view import case_context, open_sections, section_of_flash, section_of_path
from discharge_bridge.ui.contacts_view import contacts_section
from discharge_bridge.ui.referrals_view import referrals_section
from discharge_bridge.ui.screening_view import screening_section
from discharge_bridge.ui.services_delivered_view import delivered_section
from discharge_bridge.ui.templating import language_of, principal_of, render
from discharge_bridge.users.principal import Principal

router = APIRouter(route_class=CasePageRoute, include_in_schema=False)
ROUTE = "ui.case"
PRINT_ROUTE = "ui.case.plan_print"


def _context(session: SessionDep, settings: Settings, case: Case, principal: Principal) -> dict[str, Any]:
    """The case's context with its contacts section (relatives' names and phones: identity too)."""
    now = utcnow()
    contacts = contacts_section(session, case, principal, now)
    context = case_context(session, settings, case, principal, now, contacts=contacts)
    context["network"] = referrals_section(session, case, principal, now)  # consent and referrals
    context["delivered"] = delivered_section(session, settings, case, principal, context["timezone"])
    context["screening"] = screening_section(session, settings, case, principal)
    return context


def _page(
    request: Request,
    session: SessionDep,
    settings: Settings,
    case: Case,
    principal: Principal,
    *,
    flash: str | None = None,
    refused_form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    """The case page; it shows who the patient is, so the view is recorded in the access log."""
    i18n.set_language(language_of(request))  # labels are made below, before render() would set it
    context = _context(session, settings, case, principal)
    context["flash"] = flash_message(flash)
    context["refused"] = refused_form
    also = (section_of_flash(flash), section_of_path(refused_form["action"]) if refused_form else None)
    context["opened"] = open_sections(context, also=also)
    log_view(session, principal, ROUTE, [(case.source_id, case.patient_fhir_id)])
    return render(request, "case.html", context, status_code=status_code)


@router.get("/cases/{case_id}")
def case_page(
    request: Request,
    case: PageCase,
    session: SessionDep,
    settings: SettingsDep,
    principal: Reader,
    done: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    return _page(request, session, settings, case, principal, flash=done)


@router.get("/cases/{case_id}/plan/print")
def case_plan_print(
    request: Request, case: PageCase, session: SessionDep, settings: SettingsDep, principal: Reader
) -> Response:
    """The action plan on paper: the person, the destination, the plan and the contacts, in the reader's language."""
    i18n.set_language(language_of(request))
    context = _context(session, settings, case, principal)
    context["printed_by"] = principal.display_name
    log_view(session, principal, PRINT_ROUTE, [(case.source_id, case.patient_fhir_id)])
    return render(request, "case/print.html", context)


class CaseFormRoute(CasePageRoute):
    """The case page's forms: a refused submit (422, 409) shows the case page again, with what was
    typed in the refused form and the message next to the field (``_macros/forms.html``), and the
    same status code as the API. The request's session has rolled back by then, so the page is read
    in a fresh one. A case that cannot be found, or an error of the server, keeps the short page."""

    def error_response(self, request: Request, exc: Exception) -> Response:
        if refused(exc) and not isinstance(exc, NotFound) and getattr(exc, "status_code", 409) < 500:
            page = refused_page(request, exc)
            if page is not None:
                return page
        return super().error_response(request, exc)


def refused_page(request: Request, exc: Exception) -> Response | None:
    principal = principal_of(request)
    case_id = str(request.path_params.get("case_id", ""))
    if principal is None or not case_id.isdigit():
        return None
    i18n.set_language(language_of(request))
    state = refusal(request, exc)
    settings = settings_dep(request)
    with session_scope(get_engine(settings)) as session:
        case = get_case(session, int(case_id), source_ids=principal.scope)
        if case is None:
            return None
        return _page(request, session, settings, case, principal, refused_form=state, status_code=state["status"])
