"""The case page's screening forms: start a BRASS or ISAR (pre-filled), save answers, complete.

Each POST calls the same service as the API (``cases.screening.service``) and redirects back to
the section (PRG); a refused submit (an unanswered item, a stale version) shows the page again
with the message, as every case form does.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import RedirectResponse

from discharge_bridge.cases.errors import InvalidInput
from discharge_bridge.cases.screening.models import ScreeningTool
from discharge_bridge.cases.screening.service import get_screening, start_screening, update_screening
from discharge_bridge.deps import SessionDep, SettingsDep, require
from discharge_bridge.risk.screening import definition
from discharge_bridge.ui.case import CaseFormRoute
from discharge_bridge.ui.case_common import Form, PageCase, back_to_case, text, version_of
from discharge_bridge.users.principal import Principal
from discharge_bridge.users.roles import Permission
from discharge_bridge.validation import Id

router = APIRouter(route_class=CaseFormRoute, include_in_schema=False)
ANCHOR = "screening"
Coordinator = Annotated[Principal, Depends(require(Permission.coordinate))]


@router.post("/cases/{case_id}/screenings")
def screening_start(
    case: PageCase, session: SessionDep, settings: SettingsDep, principal: Coordinator, form: Form
) -> RedirectResponse:
    assert case.id is not None
    try:
        tool = ScreeningTool(text(form, "tool"))
    except ValueError:
        raise InvalidInput(("form", "tool"), "choose BRASS or ISAR") from None
    start_screening(session, case, tool, actor=principal.username, mappings_dir=settings.mappings_dir)
    return back_to_case(case.id, "screening_started", ANCHOR)


@router.post("/cases/{case_id}/screenings/{screening_id}")
def screening_save(
    case: PageCase,
    screening_id: Annotated[Id, Path()],
    session: SessionDep,
    settings: SettingsDep,
    principal: Coordinator,
    form: Form,
) -> RedirectResponse:
    """Save the radio answers shown; ``complete`` in the form completes (or, once complete, amends)."""
    assert case.id is not None
    response = get_screening(session, screening_id, source_ids=principal.scope)
    if response.case_id != case.id:
        raise InvalidInput(("path", "screening_id"), "this screening belongs to another case")
    defn = definition(response.tool, settings.mappings_dir)
    answers: dict[str, str | None] = {}
    for link in defn.points:
        given = text(form, f"a-{link}")
        if given:
            answers[link] = given
    update_screening(
        session,
        case,
        response,
        actor=principal.username,
        mappings_dir=settings.mappings_dir,
        answers=answers,
        complete=bool(text(form, "complete")),
        expected_version=version_of(form),
    )
    return back_to_case(case.id, "screening_saved", ANCHOR)
