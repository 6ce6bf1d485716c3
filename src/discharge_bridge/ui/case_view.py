"""What the case page shows, built from the case's rows: the person first, then what needs doing.

The page leads with who the patient is (name, age and sex, MRN, ward and bed, admission and
length of stay, phone, address: ``worklists.people``), why they were flagged, their readiness
dates, open barriers and planned destination; then the action plan with the task due next; then
the parts of the case as collapsible sections, each open when it needs attention (see
``attention``). Every read is scoped through the case, fetched in the reader's scope.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from discharge_bridge.cases.assessment import case_flags
from discharge_bridge.cases.events import timeline
from discharge_bridge.cases.handoffs.models import HANDOFF_TRANSITIONS, DestinationType, Handoff, HandoffStatus
from discharge_bridge.cases.handoffs.repository import list_handoffs
from discharge_bridge.cases.handoffs.service import documents_complete, missing_documents, status_dates
from discharge_bridge.cases.models import BarrierCode, Case, CaseOutcome, CaseStatus
from discharge_bridge.cases.repository import get_assessment, latest_risk, list_barriers
from discharge_bridge.cases.tasks.models import TASK_TRANSITIONS, Task, TaskDomain, TaskPriority, TaskStatus
from discharge_bridge.cases.tasks.repository import list_tasks
from discharge_bridge.cases.tasks.service import is_overdue
from discharge_bridge.config import Settings
from discharge_bridge.deps import SessionDep
from discharge_bridge.sources.service import get_source
from discharge_bridge.ui import i18n
from discharge_bridge.ui.case_common import local_input
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
from discharge_bridge.users.principal import Principal
from discharge_bridge.users.roles import Permission
from discharge_bridge.users.service import coordinators_of
from discharge_bridge.worklists.case_views import assessment_view, barrier_view, detail
from discharge_bridge.worklists.people import Identity, identities

# The collapsible sections, in the page's order; the header, flags and readiness are always shown.
SECTIONS = ("plan", "assessment", "handoffs", "barriers", "contacts", "timeline")
# The section a form belongs to, by the path after /cases/{id}/ (a refused form's section is shown open).
FORM_SECTIONS = {
    "tasks": "plan",
    "assessment": "assessment",
    "handoffs": "handoffs",
    "barriers": "barriers",
    "contacts": "contacts",
}
# The section a message after a submit is about (the page opens it again where the person was).
FLASH_SECTIONS = {
    "task": "plan",
    "handoff": "handoffs",
    "documents": "handoffs",
    "barrier": "barriers",
    "assessment": "assessment",
    "correction": "assessment",
    "contact": "contacts",
}
DUE_SOON = timedelta(hours=24)


def section_of_path(path: str) -> str | None:
    """``/cases/5/tasks/3`` -> ``plan``: where the form posting to ``path`` lives on the page."""
    parts = path.strip("/").split("/")
    return FORM_SECTIONS.get(parts[2]) if len(parts) > 2 else None


def section_of_flash(code: str | None) -> str | None:
    return next((s for prefix, s in FLASH_SECTIONS.items() if (code or "").startswith(prefix)), None)


def _override_view(handoff: Handoff) -> dict[str, Any] | None:
    """The stored override with its time parsed and the missing documents named in the reader's language."""
    override = handoff.documents_override
    if not override:
        return None
    names = {str(d["code"]): str(d["label"]) for d in handoff.documents}
    return {
        "by": override.get("by"),
        "at": datetime.fromisoformat(str(override["at"])) if override.get("at") else None,
        "reason": override.get("reason"),
        "missing": [i18n.gettext(names.get(str(c), str(c))) for c in override.get("missing", [])],
    }


def _handoff_row(handoff: Handoff, timezone: str) -> dict[str, Any]:
    moves = [s.value for s in HANDOFF_TRANSITIONS.moves(handoff.status)]
    missing = missing_documents(handoff)
    return {
        "row": handoff,
        "moves": moves,
        "active": bool(moves),
        "dates": [(status, when) for status, when in status_dates(handoff).items() if when],
        "documents_complete": documents_complete(handoff),
        "missing": [i18n.gettext(str(d["label"])) for d in missing],
        # Completing with documents missing needs a reason (cases/handoffs/service.py): the button asks for one.
        "needs_override": HandoffStatus.completed.value in moves and bool(missing),
        "override": _override_view(handoff),
        "inputs": {"scheduled_for": local_input(handoff.scheduled_for, timezone)},
    }


def _task_row(task: Task, now: datetime, timezone: str) -> dict[str, Any]:
    moves = [s.value for s in TASK_TRANSITIONS.moves(task.status)]
    due_soon = bool(moves) and task.due_at is not None and now <= task.due_at < now + DUE_SOON
    return {
        "row": task,
        "moves": moves,
        "active": bool(moves),
        "overdue": is_overdue(task, now),
        "due_soon": due_soon,
        "inputs": {"due_at": local_input(task.due_at, timezone)},
    }


def next_due(tasks: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The active task to do next: the earliest due (overdue first, as they are earliest), else the
    oldest without a due time (``list_tasks`` orders active tasks by due time, none last)."""
    return next((t for t in tasks if t["active"]), None)


def planned_destination(handoffs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The handoff under way (the latest proposed), else the completed one; declined and cancelled are no plan."""
    under_way = [h for h in handoffs if h["active"]]
    if under_way:
        return under_way[-1]
    return next((h for h in handoffs if h["row"].status == HandoffStatus.completed), None)


def attention(
    tasks: list[dict[str, Any]],
    handoffs: list[dict[str, Any]],
    barriers: list[Any],
    assessed: bool,
    medically_ready: bool,
    contacts: dict[str, Any] | None,
) -> dict[str, str]:
    """The sections that need a look now, each with why (shown on its closed summary as well)."""
    found: dict[str, str] = {}
    overdue = sum(1 for t in tasks if t["overdue"])
    soon = sum(1 for t in tasks if t["due_soon"])
    if overdue:
        found["plan"] = "overdue"
    elif soon:
        found["plan"] = "due_soon"
    if not assessed:
        found["assessment"] = "not_assessed"
    if any(h["active"] and h["missing"] for h in handoffs):
        found["handoffs"] = "documents_missing"
    if medically_ready and any(b.open for b in barriers):
        found["barriers"] = "delaying"
    if contacts and contacts.get("attention"):
        found["contacts"] = str(contacts["attention"])
    return found


def case_context(
    session: SessionDep,
    settings: Settings,
    case: Case,
    principal: Principal,
    now: datetime,
    *,
    contacts: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything the case page (and its printable plan) shows; ``contacts`` is the contacts
    section's own context, when that section exists."""
    assert case.id is not None
    view = detail(session, case, now)
    timezone = get_source(session, view.source).timezone
    person = identities(session, [(case.source_id, case.encounter_fhir_id)], now, settings.mappings_dir).get(
        (case.source_id, case.encounter_fhir_id)
    )
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
    task_rows = [_task_row(t, now, timezone) for t in tasks]
    handoff_rows = [_handoff_row(h, timezone) for h in handoffs]
    assessment = assessment_view(case.id, get_assessment(session, case.id))
    ready = case.medically_ready_at is not None and case.medically_ready_at <= now
    return {
        "case": view,
        "person": person or _unknown_person(case),
        "timezone": timezone,
        "lace": risk.lace if risk else None,
        "hospital_score": risk.hospital_score if risk else None,
        "reasons": [reason_view(r) for r in (view.flags.reasons if view.flags else [])],
        "coordinators": coordinators,
        "coordinator_name": names.get(case.coordinator or "", case.coordinator),
        "assessment": assessment,
        "flag_concepts": sorted(case_flags(session, case)),
        "tasks": task_rows,
        "next_task": next_due(task_rows),
        "overdue_count": sum(1 for t in task_rows if t["overdue"]),
        "handoffs": handoff_rows,
        "destination": planned_destination(handoff_rows),
        "barriers": barriers,
        "open_barriers": [b for b in barriers if b.open],
        "events": events,
        "contacts": contacts,
        "attention": attention(task_rows, handoff_rows, barriers, assessment.version > 0, ready, contacts),
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
        "task_statuses": TaskStatus,
        "label": label,
        "task_text": task_text,
        "now": now,
    }


def open_sections(context: dict[str, Any], *, also: tuple[str | None, ...] = ()) -> set[str]:
    """The sections shown open: those needing attention, and the one the person was just working in."""
    return set(context["attention"]) | {s for s in also if s}


def _unknown_person(case: Case) -> Identity:
    """A case whose admission is not stored (yet): only the FHIR ids are known."""
    return Identity(
        source_id=case.source_id,
        patient_fhir_id=case.patient_fhir_id,
        encounter_fhir_id=case.encounter_fhir_id,
        name=None,
        age=None,
        sex=None,
        birth_date=None,
        mrn=None,
        phone=None,
        address=None,
        ward=None,
        bed=None,
        admitted_at=None,
        length_of_stay_days=None,
    )
