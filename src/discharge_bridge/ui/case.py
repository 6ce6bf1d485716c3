"""The case page: header, flags with evidence, readiness, needs assessment, action plan, handoffs,
barriers and the timeline. Every form on it carries the version it was rendered with.

Reads go through the case's repository and views, scoped to the reader's hospitals (a case of
another hospital is a 404, as in the API); the forms post to ``ui/case_forms.py``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from discharge_bridge.cases.assessment import case_flags
from discharge_bridge.cases.events import timeline
from discharge_bridge.cases.handoffs.models import HANDOFF_TRANSITIONS, DestinationType, Handoff
from discharge_bridge.cases.handoffs.repository import list_handoffs
from discharge_bridge.cases.handoffs.service import documents_complete, status_dates
from discharge_bridge.cases.models import BarrierCode, Case, CaseOutcome, CaseStatus
from discharge_bridge.cases.repository import get_assessment, latest_risk, list_barriers
from discharge_bridge.cases.tasks.models import TASK_TRANSITIONS, Task, TaskDomain, TaskPriority
from discharge_bridge.cases.tasks.repository import list_tasks
from discharge_bridge.cases.tasks.service import is_overdue
from discharge_bridge.db import utcnow
from discharge_bridge.deps import SessionDep
from discharge_bridge.sources.service import get_source
from discharge_bridge.ui import i18n
from discharge_bridge.ui.case_common import CasePageRoute, PageCase, Reader, flash_message, local_input
from discharge_bridge.ui.case_labels import (
    ABILITIES,
    DAILY_LIVING,
    DOMAINS,
    HOUSING,
    LABELS,
    label,
    reason_view,
    task_text,
)
from discharge_bridge.ui.case_timeline import describe
from discharge_bridge.ui.templating import language_of, render
from discharge_bridge.users.principal import Principal
from discharge_bridge.users.roles import Permission
from discharge_bridge.users.service import coordinators_of
from discharge_bridge.worklists.case_views import assessment_view, barrier_view, detail

router = APIRouter(route_class=CasePageRoute, include_in_schema=False)


def _handoff_row(handoff: Handoff) -> dict[str, Any]:
    return {
        "row": handoff,
        "moves": [s.value for s in HANDOFF_TRANSITIONS.moves(handoff.status)],
        "dates": [(status, when) for status, when in status_dates(handoff).items() if when],
        "documents_complete": documents_complete(handoff),
    }


def _task_row(task: Task, now: datetime) -> dict[str, Any]:
    moves = [s.value for s in TASK_TRANSITIONS.moves(task.status)]
    return {"row": task, "moves": moves, "overdue": is_overdue(task, now)}


def case_context(session: SessionDep, case: Case, principal: Principal) -> dict[str, Any]:
    assert case.id is not None
    now = utcnow()
    view = detail(session, case, now)
    timezone = get_source(session, view.source).timezone
    risk = latest_risk(session, case)
    tasks = list_tasks(session, case.id)
    handoffs = list_handoffs(session, case.id)
    barriers = [barrier_view(b, now) for b in list_barriers(session, case.id)]
    task_names = {t.id or 0: task_text(t.kind, t.description) for t in tasks}
    handoff_names = {h.id or 0: label("destination", h.destination_type) for h in handoffs}
    barrier_names = {b.id: label("barrier", b.code) for b in barriers}
    documents = {str(d["code"]): str(d["label"]) for h in handoffs for d in h.documents}
    events = [
        describe(e, timezone, tasks=task_names, handoffs=handoff_names, barriers=barrier_names, documents=documents)
        for e in reversed(timeline(session, case.id))
    ]
    coordinators = coordinators_of(session, case.source_id)
    names = {u.username: u.display_name for u in coordinators}
    is_open = case.status == CaseStatus.open
    return {
        "case": view,
        "timezone": timezone,
        "lace": risk.lace if risk else None,
        "age": risk.age if risk else None,
        "reasons": [reason_view(r) for r in (view.flags.reasons if view.flags else [])],
        "coordinators": coordinators,
        "coordinator_name": names.get(case.coordinator or "", case.coordinator),
        "assessment": assessment_view(case.id, get_assessment(session, case.id)),
        "flag_concepts": sorted(case_flags(session, case)),
        "tasks": [_task_row(t, now) for t in tasks],
        "handoffs": [_handoff_row(h) for h in handoffs],
        "barriers": barriers,
        "events": events,
        "is_open": is_open,
        "can_coordinate": is_open and principal.can(Permission.coordinate),
        "can_barriers": is_open and principal.can(Permission.edit_barriers),
        "can_reopen": not is_open and principal.can(Permission.coordinate),
        "inputs": {
            "expected_discharge_at": local_input(case.expected_discharge_at, timezone),
            "medically_ready_at": local_input(case.medically_ready_at, timezone),
        },
        "choices": {
            "domains": DOMAINS,
            "daily_living": DAILY_LIVING,
            "abilities": ABILITIES,
            "housing": HOUSING,
            "task_domains": [d.value for d in TaskDomain],
            "task_priorities": [p.value for p in TaskPriority],
            "destinations": [d.value for d in DestinationType],
            "barriers": [b.value for b in BarrierCode],
            "outcomes": [o.value for o in CaseOutcome],
            "concepts": list(LABELS["concept"]),
        },
        "label": label,
        "task_text": task_text,
        "now": now,
    }


@router.get("/cases/{case_id}")
def case_page(
    request: Request,
    case: PageCase,
    session: SessionDep,
    principal: Reader,
    done: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    i18n.set_language(language_of(request))  # labels are made below, before render() would set it
    context = case_context(session, case, principal)
    context["flash"] = flash_message(done)
    return render(request, "case.html", context)
