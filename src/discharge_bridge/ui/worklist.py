"""The coordinator's worklist page: this morning's list of each hospital, then the live worklist.

The morning list is the snapshot the scheduler made at the start of the day (new flags since the
previous list, tasks due today or overdue); each due task also shows its status now, so work done
since the morning is not chased twice. Patients appear by FHIR id and ward / bed: the store holds
no names, by design, and no birth dates are shown (the age is).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from discharge_bridge.cases.models import Case, CaseStatus
from discharge_bridge.cases.repository import get_case_for_encounter, get_child, get_encounter, latest_risk, list_cases
from discharge_bridge.cases.service import open_case_by_hand
from discharge_bridge.cases.tasks.models import TASK_TRANSITIONS, Task, TaskStatus
from discharge_bridge.deps import SessionDep, SettingsDep
from discharge_bridge.risk import RuleSetError, load_rules
from discharge_bridge.sources.models import Source
from discharge_bridge.sources.service import list_sources
from discharge_bridge.ui import i18n
from discharge_bridge.ui.case_common import CasePageRoute, Coordinator, Form, Reader, text
from discharge_bridge.ui.case_labels import label, task_text, worklist_reasons
from discharge_bridge.ui.templating import language_of, render
from discharge_bridge.users.principal import Principal
from discharge_bridge.users.roles import Permission, Role
from discharge_bridge.users.service import coordinators_of
from discharge_bridge.worklists.models import MorningList
from discharge_bridge.worklists.morning import for_coordinator, latest_for
from discharge_bridge.worklists.service import worklist

PER_PAGE = 25
router = APIRouter(route_class=CasePageRoute, include_in_schema=False)


def _has_own_cases(session: Session, principal: Principal) -> bool:
    page = list_cases(
        session, source_ids=principal.scope, status=CaseStatus.open, coordinator=principal.username, limit=1
    )
    return page.total > 0


def _flag_row(session: Session, source: Source, item: dict[str, Any]) -> dict[str, Any]:
    assert source.id is not None
    encounter = get_encounter(session, source.id, str(item.get("encounter")))
    draft = Case(source_id=source.id, encounter_fhir_id=str(item.get("encounter")), patient_fhir_id="")
    risk = latest_risk(session, draft)
    return {
        **item,
        "reasons": worklist_reasons(item.get("reasons") or []),
        "age": risk.age if risk else None,
        "admitted_at": encounter.period_start if encounter else None,
        "still_flagged": bool(risk and risk.flagged and risk.current),
    }


def _task_row(session: Session, principal: Principal, item: dict[str, Any]) -> dict[str, Any]:
    task = get_child(session, Task, int(item.get("task_id") or 0), source_ids=principal.scope)
    status = TaskStatus(task.status) if task is not None else None
    due = item.get("due_at")
    return {
        **item,
        "due_at": datetime.fromisoformat(due) if isinstance(due, str) else None,  # the list stores ISO text
        "status_now": status,
        "done": status is not None and status not in TASK_TRANSITIONS.active,
    }


def _morning(session: Session, principal: Principal, sources: dict[int, Source], view: str) -> list[dict[str, Any]]:
    lists: list[MorningList] = latest_for(session, principal.scope)
    shown = []
    for row in sorted(lists, key=lambda r: sources[r.source_id].hospital if r.source_id in sources else ""):
        source = sources.get(row.source_id)
        if source is None:
            continue
        items = for_coordinator(row.items, principal.username) if view == "mine" else row.items
        shown.append(
            {
                "source": source,
                "local_date": date.fromisoformat(row.local_date),
                "generated_at": row.generated_at,
                "counts": items.get("counts", {}),
                "flags": [_flag_row(session, source, f) for f in items.get("new_flags", [])],
                "tasks": [_task_row(session, principal, t) for t in items.get("due_tasks", [])],
            }
        )
    return shown


def _live(
    session: Session, principal: Principal, sources: dict[int, Source], rules_version: str, page: int
) -> dict[str, Any]:
    found = worklist(
        session, rules_version=rules_version, source_ids=principal.scope, limit=PER_PAGE, offset=(page - 1) * PER_PAGE
    )
    by_name = {s.name: s for s in sources.values()}
    rows = []
    for item in found.items:
        source = by_name[item.source]
        assert source.id is not None
        case = get_case_for_encounter(session, source.id, item.encounter, source_ids=principal.scope)
        rows.append(
            {
                "item": item,
                "timezone": source.timezone,
                "case": case,
                "reasons": worklist_reasons([r.model_dump() for r in item.reasons]),
            }
        )
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
        rules = load_rules("rules", search_dir=settings.mappings_dir)
    except RuleSetError as exc:
        raise HTTPException(503, f"the rule set cannot be loaded: {exc}") from None
    sources = {s.id: s for s in list_sources(session, source_ids=principal.scope) if s.id is not None}
    toggle = principal.role == Role.coordinator
    if not toggle:
        view = "all"
    elif view is None:
        view = "mine" if _has_own_cases(session, principal) else "all"
    people = {u.username: u.display_name for sid in sources for u in coordinators_of(session, sid)}
    return render(
        request,
        "worklist.html",
        {
            "title": "Worklist",
            "view": view,
            "toggle": toggle,
            "mornings": _morning(session, principal, sources, view),
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
        source_ids=principal.scope,
        taken_by=principal.username if principal.role == Role.coordinator else None,
    )
    return RedirectResponse(f"/cases/{case.id}?done=opened", status_code=303)
