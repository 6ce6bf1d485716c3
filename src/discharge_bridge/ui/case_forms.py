"""The case page's forms: each POST calls the same service as the API, then redirects back (PRG).

Every form names the version it was rendered with; a stale one is refused by the service with the
API's 409, never written over. A refused form (409, 422) comes back on the case page as it was
typed, with the message next to the field (``CaseFormRoute``). Values go through the API's own
input schemas, so the page and the API accept exactly the same things. Times typed on the page
are read in the hospital's time zone. Tasks and handoffs are edited in place: each row's form
sends all its fields, and only those that differ from the stored ones change.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Path
from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData

from discharge_bridge.cases.assessment import add_flag_correction, put_assessment
from discharge_bridge.cases.barriers import add_barrier, end_barrier
from discharge_bridge.cases.errors import NotFound
from discharge_bridge.cases.handoffs.models import Handoff, HandoffStatus
from discharge_bridge.cases.handoffs.schemas import HandoffIn, HandoffPatch
from discharge_bridge.cases.handoffs.service import create_handoff, update_handoff
from discharge_bridge.cases.models import Barrier, Case, CaseOutcome, CaseStatus
from discharge_bridge.cases.readiness import DATES
from discharge_bridge.cases.repository import get_child
from discharge_bridge.cases.schemas import AssessmentPut, BarrierIn, CorrectionIn
from discharge_bridge.cases.tasks.models import Task, TaskStatus
from discharge_bridge.cases.tasks.schemas import TaskIn, TaskPatch
from discharge_bridge.cases.tasks.service import create_task, update_task
from discharge_bridge.cases.updates import update_case
from discharge_bridge.deps import SessionDep, SettingsDep
from discharge_bridge.sources.service import list_sources
from discharge_bridge.ui.case import CaseFormRoute
from discharge_bridge.ui.case_common import (
    BarrierEditor,
    Coordinator,
    Form,
    FormInvalid,
    PageCase,
    back_to_case,
    local_datetime,
    local_input,
    text,
    validated,
    version_of,
)
from discharge_bridge.ui.case_labels import DAILY_LIVING, DOMAINS
from discharge_bridge.users.principal import Principal
from discharge_bridge.validation import Id, out_of_years

router = APIRouter(route_class=CaseFormRoute, include_in_schema=False)
E = TypeVar("E", bound=StrEnum)
R = TypeVar("R", Task, Handoff, Barrier)
TaskId = Annotated[Id, Path()]
HandoffId = Annotated[Id, Path()]
BarrierId = Annotated[Id, Path()]


def _timezone(session: SessionDep, case: Case) -> str:
    return list_sources(session, source_ids=[case.source_id])[0].timezone


def _choice(enum: type[E], form: FormData, field: str) -> E:
    try:
        return enum(text(form, field))
    except ValueError:
        raise FormInvalid(("form", field), f"choose one of: {', '.join(e.value for e in enum)}", "enum") from None


def _child(session: SessionDep, model: type[R], row_id: int, case: Case, principal: Principal) -> R:
    """A task, handoff or barrier of this case (in the reader's scope), or 404."""
    row = get_child(session, model, row_id, source_ids=principal.scope, case_id=case.id)
    if row is None:
        raise NotFound(model.__name__.lower(), row_id)
    return row


def _when(form: FormData, field: str, timezone: str) -> datetime | None:
    """A date and time typed on the page, read in the hospital's zone, within the years the API takes
    (checked first: a time in year 1 cannot even be shown in another zone)."""
    value = local_datetime(text(form, field), timezone, field)
    problem = out_of_years(value) if value is not None else None
    if problem is not None:
        raise FormInvalid(("form", field), f"Input should be {problem}", "date_out_of_range")
    return value


def _tri(value: str) -> bool | None:
    return {"yes": True, "no": False}.get(value)


def _lines(form: FormData, field: str) -> list[str]:
    return [line.strip() for line in text(form, field).splitlines() if line.strip()]


def _update(session: SessionDep, case: Case, principal: Principal, form: FormData, values: dict[str, Any]) -> bool:
    """A header form's change, as the API's PATCH makes it, for the version the form was rendered with."""
    return update_case(session, case, values, actor=principal.username, expected_version=version_of(form))


@router.post("/cases/{case_id}/assign")
def case_assign(case: PageCase, session: SessionDep, principal: Coordinator, form: Form) -> RedirectResponse:
    assert case.id is not None
    chosen = text(form, "coordinator") or None
    _update(session, case, principal, form, {"coordinator": chosen})
    return back_to_case(case.id, "assigned")


@router.post("/cases/{case_id}/status")
def case_status(case: PageCase, session: SessionDep, principal: Coordinator, form: Form) -> RedirectResponse:
    assert case.id is not None
    values: dict[str, Any] = {"status": _choice(CaseStatus, form, "status")}
    if text(form, "outcome"):
        values["outcome"] = _choice(CaseOutcome, form, "outcome")
    _update(session, case, principal, form, values)
    return back_to_case(case.id, "status")


@router.post("/cases/{case_id}/keep")
def case_keep(case: PageCase, session: SessionDep, principal: Coordinator, form: Form) -> RedirectResponse:
    """Keep a case whose flag the EHR withdrew, with the coordinator's reason."""
    assert case.id is not None
    _update(session, case, principal, form, {"keep_reason": text(form, "keep_reason")})
    return back_to_case(case.id, "kept")


@router.post("/cases/{case_id}/same-person")
def case_same_person(case: PageCase, session: SessionDep, principal: Coordinator, form: Form) -> RedirectResponse:
    """Confirm that another record the EHR named is this case's person."""
    assert case.id is not None
    update_case(session, case, {"same_person": text(form, "same_person")}, actor=principal.username)
    return back_to_case(case.id, "same_person")


@router.post("/cases/{case_id}/dates")
def case_dates(case: PageCase, session: SessionDep, principal: Coordinator, form: Form) -> RedirectResponse:
    """Only the dates the person changed become theirs: resubmitting the EHR's date changes nothing."""
    assert case.id is not None
    timezone = _timezone(session, case)
    values: dict[str, Any] = {}
    for field in DATES:  # the form shows minutes in the hospital's zone: an untouched field is not sent on
        new = _when(form, field, timezone)
        if local_input(new, timezone) != local_input(getattr(case, field), timezone):
            values[field] = new
    changed = _update(session, case, principal, form, values)
    return back_to_case(case.id, "dates" if changed else "dates_unchanged", "readiness")


@router.post("/cases/{case_id}/assessment")
def case_assessment(case: PageCase, session: SessionDep, principal: Coordinator, form: Form) -> RedirectResponse:
    assert case.id is not None
    body = validated(
        AssessmentPut,
        {
            "domains": {
                d: {"findings": text(form, f"{d}_findings"), "needs": _lines(form, f"{d}_needs")} for d in DOMAINS
            },
            "daily_living": {k: text(form, k) or None for k in DAILY_LIVING},
            "living_situation": {
                "lives_alone": _tri(text(form, "lives_alone")),
                "has_carer": _tri(text(form, "has_carer")),
                "housing": text(form, "housing") or None,
                "notes": text(form, "living_notes"),
            },
            "version": version_of(form),
        },
    )
    payload = body.model_dump(exclude={"version"})
    saved = put_assessment(
        session,
        case,
        actor=principal.username,
        domains=payload["domains"],
        daily_living=payload["daily_living"],
        living_situation=payload["living_situation"],
        expected_version=body.version,
    )
    changed = saved.version != body.version  # the service flushes a change: the version has moved
    return back_to_case(case.id, "assessment" if changed else "assessment_unchanged", "assessment")


@router.post("/cases/{case_id}/assessment/corrections")
def case_correction(case: PageCase, session: SessionDep, principal: Coordinator, form: Form) -> RedirectResponse:
    assert case.id is not None
    verdict = _tri(text(form, "correct"))
    body = validated(
        CorrectionIn,
        {"concept": text(form, "concept"), "correct": verdict, "note": text(form, "note"), "version": version_of(form)},
    )
    add_flag_correction(
        session,
        case,
        actor=principal.username,
        concept=body.concept,
        correct=body.correct,
        note=body.note,
        expected_version=body.version,
    )
    return back_to_case(case.id, "correction", "assessment")


@router.post("/cases/{case_id}/tasks")
def task_add(case: PageCase, session: SessionDep, principal: Coordinator, form: Form) -> RedirectResponse:
    assert case.id is not None
    timezone = _timezone(session, case)
    body = validated(
        TaskIn,
        {
            "description": text(form, "description"),
            "domain": text(form, "domain"),
            **({"priority": text(form, "priority")} if text(form, "priority") else {}),
            "owner": text(form, "owner") or None,
            "due_at": _when(form, "due_at", timezone),
        },
    )
    create_task(
        session,
        case,
        actor=principal.username,
        description=body.description,
        domain=body.domain,
        priority=body.priority,
        owner=body.owner,
        due_at=body.due_at,
    )
    return back_to_case(case.id, "task_added", "plan")


@router.post("/cases/{case_id}/tasks/{task_id}/status")
def task_move(
    case: PageCase, task_id: TaskId, session: SessionDep, principal: Coordinator, form: Form
) -> RedirectResponse:
    assert case.id is not None
    task = _child(session, Task, task_id, case, principal)
    status = _choice(TaskStatus, form, "status")
    update_task(session, case, task, actor=principal.username, expected_version=version_of(form), status=status)
    return back_to_case(case.id, "task_moved", f"task-{task_id}")


@router.post("/cases/{case_id}/tasks/{task_id}")
def task_edit(
    case: PageCase, task_id: TaskId, session: SessionDep, principal: Coordinator, form: Form
) -> RedirectResponse:
    """Owner, due time and note of one task, edited in place on its row. A due time sent back as stored
    is not judged again (a task long overdue still takes a new owner)."""
    assert case.id is not None
    task = _child(session, Task, task_id, case, principal)
    timezone = _timezone(session, case)
    typed = {
        "owner": text(form, "owner") or None,
        "due_at": _when(form, "due_at", timezone),
        "status_reason": text(form, "status_reason") or None,
    }
    typed = _differing(task, typed, timezone)
    values = validated(TaskPatch, typed).model_dump(include=set(typed))
    changed = update_task(session, case, task, actor=principal.username, expected_version=version_of(form), **values)
    return back_to_case(case.id, "task_saved" if changed else "task_unchanged", f"task-{task_id}")


def _differing(row: Task | Handoff, values: dict[str, Any], timezone: str) -> dict[str, Any]:
    """The fields of an in-place edit that differ from the stored ones; times compared to the minute
    in the hospital's zone (the form shows no seconds), so an untouched field is never sent on."""
    found = {}
    for field, new in values.items():
        old = getattr(row, field)
        if field.endswith(("_at", "_for")):
            if local_input(new, timezone) != local_input(old, timezone):
                found[field] = new
        elif new != old:
            found[field] = new
    return found


@router.post("/cases/{case_id}/handoffs")
def handoff_add(
    case: PageCase, session: SessionDep, settings: SettingsDep, principal: Coordinator, form: Form
) -> RedirectResponse:
    assert case.id is not None
    timezone = _timezone(session, case)
    body = validated(
        HandoffIn,
        {
            "destination_type": text(form, "destination_type"),
            "organisation": text(form, "organisation") or None,
            "scheduled_for": _when(form, "scheduled_for", timezone),
            "note": text(form, "note") or None,
        },
    )
    create_handoff(
        session,
        case,
        actor=principal.username,
        destination_type=body.destination_type,
        mappings_dir=settings.mappings_dir,
        organisation=body.organisation,
        scheduled_for=body.scheduled_for,
        note=body.note,
    )
    return back_to_case(case.id, "handoff_added", "handoffs")


@router.post("/cases/{case_id}/handoffs/{handoff_id}/status")
def handoff_move(
    case: PageCase, handoff_id: HandoffId, session: SessionDep, principal: Coordinator, form: Form
) -> RedirectResponse:
    assert case.id is not None
    handoff = _child(session, Handoff, handoff_id, case, principal)
    status = _choice(HandoffStatus, form, "status")
    update_handoff(
        session,
        case,
        handoff,
        actor=principal.username,
        expected_version=version_of(form),
        status=status,
        override_reason=text(form, "override_reason") or None,
    )
    return back_to_case(case.id, "handoff_moved", f"handoff-{handoff_id}")


@router.post("/cases/{case_id}/handoffs/{handoff_id}")
def handoff_edit(
    case: PageCase, handoff_id: HandoffId, session: SessionDep, principal: Coordinator, form: Form
) -> RedirectResponse:
    """Receiving organisation, handover time and note of one handoff, edited in place."""
    assert case.id is not None
    handoff = _child(session, Handoff, handoff_id, case, principal)
    timezone = _timezone(session, case)
    body = validated(
        HandoffPatch,
        {
            "organisation": text(form, "organisation") or None,
            "scheduled_for": _when(form, "scheduled_for", timezone),
            "note": text(form, "note") or None,
        },
    )
    values = _differing(handoff, body.model_dump(include={"organisation", "scheduled_for", "note"}), timezone)
    changed = update_handoff(
        session, case, handoff, actor=principal.username, expected_version=version_of(form), **values
    )
    return back_to_case(case.id, "handoff_saved" if changed else "handoff_unchanged", f"handoff-{handoff_id}")


@router.post("/cases/{case_id}/handoffs/{handoff_id}/documents")
def handoff_documents(
    case: PageCase, handoff_id: HandoffId, session: SessionDep, principal: Coordinator, form: Form
) -> RedirectResponse:
    """The checklist as ticked: a box left unticked means the document is not ready (yet)."""
    assert case.id is not None
    handoff = _child(session, Handoff, handoff_id, case, principal)
    ticked = set(v for v in form.getlist("documents") if isinstance(v, str))
    ticks = {str(d["code"]): str(d["code"]) in ticked for d in handoff.documents}
    update_handoff(session, case, handoff, actor=principal.username, expected_version=version_of(form), documents=ticks)
    return back_to_case(case.id, "documents", f"handoff-{handoff_id}")


@router.post("/cases/{case_id}/barriers")
def barrier_add(case: PageCase, session: SessionDep, principal: BarrierEditor, form: Form) -> RedirectResponse:
    assert case.id is not None
    body = validated(
        BarrierIn,
        {"code": text(form, "code"), "owner": text(form, "owner") or None, "note": text(form, "note") or None},
    )
    add_barrier(session, case, actor=principal.username, code=body.code, owner=body.owner, note=body.note)
    return back_to_case(case.id, "barrier_added", "barriers")


@router.post("/cases/{case_id}/barriers/{barrier_id}/end")
def barrier_end(
    case: PageCase, barrier_id: BarrierId, session: SessionDep, principal: BarrierEditor, form: Form
) -> RedirectResponse:
    assert case.id is not None
    barrier = _child(session, Barrier, barrier_id, case, principal)
    end_barrier(session, case, barrier, actor=principal.username, expected_version=version_of(form))
    return back_to_case(case.id, "barrier_ended", "barriers")
