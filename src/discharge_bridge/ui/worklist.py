"""The coordinator's worklist page: this morning's list of each hospital, then the live worklist.

The morning list is the snapshot the scheduler made at the start of the day (new flags since the
previous list, tasks due today or overdue); each due task also shows its status now, so work done
since the morning is not chased twice. Patients appear by FHIR id and ward / bed: the store holds
no names, by design, and no birth dates are shown (the age is).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response

from discharge_bridge.cases.service import open_case_by_hand
from discharge_bridge.deps import SessionDep, SettingsDep
from discharge_bridge.risk import RuleSetError, loading
from discharge_bridge.sources.models import Source
from discharge_bridge.sources.service import list_sources
from discharge_bridge.ui import i18n
from discharge_bridge.ui.case_common import CasePageRoute, Coordinator, Form, Reader, text
from discharge_bridge.ui.case_labels import label, task_text, worklist_reasons
from discharge_bridge.ui.templating import language_of, render
from discharge_bridge.users.principal import Principal
from discharge_bridge.users.roles import Permission
from discharge_bridge.users.service import coordinators_of
from discharge_bridge.worklists.morning import shown_lists
from discharge_bridge.worklists.service import cases_of, worklist, worklist_half

PER_PAGE = 25
router = APIRouter(route_class=CasePageRoute, include_in_schema=False)


def _morning(session: SessionDep, principal: Principal, sources: dict[int, Source], view: str) -> list[dict[str, Any]]:
    coordinator = principal.username if view == "mine" else None
    shown = shown_lists(session, sources, source_ids=principal.scope, coordinator=coordinator)
    for hospital in shown:
        hospital["flags"] = [{**f, "reasons": worklist_reasons(f.get("reasons") or [])} for f in hospital["flags"]]
    return shown


def _live(
    session: SessionDep, principal: Principal, sources: dict[int, Source], rules_version: str, page: int
) -> dict[str, Any]:
    found = worklist(
        session, rules_version=rules_version, source_ids=principal.scope, limit=PER_PAGE, offset=(page - 1) * PER_PAGE
    )
    by_name = {s.name: s for s in sources.values()}
    cases = cases_of(session, found.items, source_ids=principal.scope)
    rows = [
        {
            "item": item,
            "timezone": by_name[item.source].timezone,
            "case": cases.get((item.source, item.encounter)),
            "reasons": worklist_reasons([r.model_dump() for r in item.reasons]),
        }
        for item in found.items
    ]
    pages = max(1, -(-found.total // PER_PAGE))
    return {"rows": rows, "total": found.total, "page": page, "pages": pages}


@router.get("/worklist")
def worklist_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: Reader,
    view: Annotated[Literal["mine", "all"] | None, Query()] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    i18n.set_language(language_of(request))  # labels are made below, before render() would set it
    try:
        rules = loading.rule_set(settings.mappings_dir)
    except RuleSetError as exc:
        raise HTTPException(503, f"the rule set cannot be loaded: {exc}") from None
    sources = {s.id: s for s in list_sources(session, source_ids=principal.scope) if s.id is not None}
    half, toggle = worklist_half(session, principal, view)
    people = {u.username: u.display_name for sid in sources for u in coordinators_of(session, sid)}
    return render(
        request,
        "worklist.html",
        {
            "title": "Worklist",
            "view": half,
            "toggle": toggle,
            "mornings": _morning(session, principal, sources, half),
            "live": _live(session, principal, sources, rules.version, page),
            "people": people,
            "multi_hospital": len(sources) > 1,
            "label": label,
            "task_text": task_text,
            "can_open": principal.can(Permission.coordinate),
        },
    )


@router.post("/worklist/open")
def open_from_worklist(session: SessionDep, principal: Coordinator, form: Form) -> RedirectResponse:
    """Open a case by hand for a flagged admission that has none; a coordinator takes it on."""
    case, _ = open_case_by_hand(
        session,
        source_name=text(form, "source"),
        encounter_fhir_id=text(form, "encounter"),
        actor=principal.username,
        principal=principal,
    )
    return RedirectResponse(f"/cases/{case.id}?done=opened", status_code=303)
