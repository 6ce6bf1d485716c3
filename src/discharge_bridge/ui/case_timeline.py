"""The case timeline in words: each event of the append-only log as "what happened" and its details.

The log stores ``{field: [old, new]}`` and ids (see cases/events.py); this turns them into sentences
in the reader's language, with times in the hospital's zone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from discharge_bridge.cases.models import CaseEvent
from discharge_bridge.ui import i18n
from discharge_bridge.ui.case_labels import N_, concept_label, label, task_text
from discharge_bridge.ui.contact_labels import EVENT_TITLES as CONTACT_TITLES
from discharge_bridge.ui.contact_labels import event_details as contact_details
from discharge_bridge.ui.referral_labels import EVENT_TITLES as REFERRAL_TITLES
from discharge_bridge.ui.referral_labels import event_details as referral_details

TITLES = {
    "opened": N_("Case opened"),
    "priority_changed": N_("Priority changed"),
    "assigned": N_("Coordinator changed"),
    "status_changed": N_("Case status changed"),
    "dates_changed": N_("Discharge dates changed"),
    "discharged": N_("Discharged from hospital"),
    "assessment_updated": N_("Needs assessment updated"),
    "flag_corrected": N_("Flag checked at the bedside"),
    "task_created": N_("Task added"),
    "task_updated": N_("Task changed"),
    "handoff_created": N_("Handoff proposed"),
    "handoff_updated": N_("Handoff changed"),
    "barrier_added": N_("Barrier recorded"),
    "barrier_updated": N_("Barrier changed"),
    "leg_changed": N_("Moved on within the stay"),
    "flag_withdrawn": N_("Flag withdrawn in the EHR"),
    "flag_restored": N_("Flagged again"),
    "kept": N_("Kept open after the flag was withdrawn"),
    "merged": N_("Patient records merged"),
    "same_person": N_("Confirmed as the same person"),
    **CONTACT_TITLES,  # contacts and the contact log (ui/contact_labels.py)
    **REFERRAL_TITLES,  # consent and referrals (ui/referral_labels.py)
}
DATE_FIELDS = {
    "expected_discharge_at": N_("Expected discharge"),
    "medically_ready_at": N_("Medically ready"),
    "actual_discharge_at": N_("Discharged"),
    "due_at": N_("Due"),
    "scheduled_for": N_("Handover time"),
    "started_at": N_("Started"),
    "ended_at": N_("Ended"),
}
TEXT_FIELDS = {
    "owner": N_("Owner"),
    "description": N_("Description"),
    "organisation": N_("Organisation"),
    "note": N_("Note"),
    "status_reason": N_("Reason"),
}
_ARROW = " → "
DOMAIN, OWNER, DUE, WARD = N_("Domain"), N_("Owner"), N_("Due"), N_("Ward")
DOCS_READY, DOCS_NOT_READY = N_("Documents ready"), N_("Documents no longer ready")
COMPLETED_WITHOUT, REASON = N_("Completed without"), N_("Reason")


def _when(value: Any, timezone: str) -> str:
    if not value:
        return "—"
    try:
        return i18n.fmt_datetime(datetime.fromisoformat(str(value)), timezone)
    except ValueError:
        return str(value)


def _pair(change: Any, show: Any) -> str:
    if isinstance(change, list) and len(change) == 2:
        return f"{show(change[0])}{_ARROW}{show(change[1])}"
    return str(show(change))


def _named(name: str, value: object) -> str:
    """ "Owner: anna": ``name`` is a message id marked with N_."""
    return f"{i18n.gettext(name)}: {value}"


def _nobody(value: Any) -> str:
    return str(value) if value else i18n.gettext("nobody")


def _field_changes(data: dict[str, Any], timezone: str) -> list[str]:
    parts = []
    for field, name in DATE_FIELDS.items():
        if field in data:
            parts.append(_named(name, _pair(data[field], lambda v: _when(v, timezone))))
    for field, name in TEXT_FIELDS.items():
        if field in data:
            parts.append(_named(name, _pair(data[field], lambda v: v or "—")))
    return parts


def _task(data: dict[str, Any], tasks: dict[int, str], timezone: str) -> list[str]:
    parts = [tasks.get(int(data.get("task_id") or 0), f"#{data.get('task_id')}")]
    if "status" in data:
        parts.append(_pair(data["status"], lambda v: label("task_status", v)))
    if "domain" in data:
        parts.append(_named(DOMAIN, _pair(data["domain"], lambda v: label("domain", v))))
    return parts + _field_changes(data, timezone)


def _handoff(data: dict[str, Any], handoffs: dict[int, str], documents: dict[str, str], timezone: str) -> list[str]:
    parts = [handoffs.get(int(data.get("handoff_id") or 0), f"#{data.get('handoff_id')}")]
    if "status" in data:
        parts.append(_pair(data["status"], lambda v: label("handoff_status", v)))
    ticks = data.get("documents")
    if isinstance(ticks, dict):
        done = {code: bool(change[-1]) for code, change in ticks.items() if isinstance(change, list) and change}
        names = {code: i18n.gettext(documents.get(code, code)) for code in done}
        if ready := [names[c] for c, now in done.items() if now]:
            parts.append(_named(DOCS_READY, ", ".join(ready)))
        if not_ready := [names[c] for c, now in done.items() if not now]:
            parts.append(_named(DOCS_NOT_READY, ", ".join(not_ready)))
    override = data.get("documents_override")
    if isinstance(override, dict):  # completed while documents were missing: which, and why
        missing = [i18n.gettext(documents.get(str(c), str(c))) for c in override.get("missing", [])]
        parts.append(_named(COMPLETED_WITHOUT, ", ".join(missing)))
        parts.append(_named(REASON, override.get("reason") or "—"))
    return parts + _field_changes(data, timezone)


def describe(
    event: CaseEvent,
    timezone: str,
    *,
    tasks: dict[int, str],
    handoffs: dict[int, str],
    barriers: dict[int, str],
    documents: dict[str, str],
) -> dict[str, Any]:
    """``{"at", "actor", "title", "details": [str]}`` for one event; ``tasks`` etc. name the rows by id,
    ``documents`` names checklist codes (English labels from the mapping file, translated here)."""
    data = event.data or {}
    kind = event.kind
    details: list[str] = []
    if kind == "opened":
        parts = dict.fromkeys(p for c in data.get("flags", []) for p in str(c).split("+") if p)
        details = [", ".join(concept_label(p) for p in parts) or i18n.gettext("no flags")]
        if data.get("by_hand"):
            details.append(i18n.gettext("opened by hand"))
    elif kind == "priority_changed":
        details = [_pair(data.get("priority"), lambda v: label("priority", v))]
    elif kind == "assigned":
        details = [_pair(data.get("coordinator"), _nobody)]
    elif kind == "status_changed":
        details = [_pair(data.get("status"), lambda v: label("case_status", v))]
        outcome = data.get("outcome")
        if isinstance(outcome, list) and outcome[-1]:
            details.append(label("outcome", outcome[-1]))
        if data.get("reason"):
            details.append(str(data["reason"]))
    elif kind == "leg_changed":
        details = [_pair(data.get("encounter"), str)]
        if data.get("ward"):
            details.append(_named(WARD, str(data["ward"])))
    elif kind == "flag_restored":
        details = [", ".join(concept_label(str(c)) for c in data.get("flags", []))]
    elif kind == "kept":
        details = [str(data.get("reason") or "")]
    elif kind in ("merged", "same_person"):
        details = [_pair(data.get("patient"), str)]
    elif kind in ("dates_changed", "discharged"):
        details = _field_changes(data, timezone)
        if data.get("source"):
            details.append(label("date_source", data["source"]))
    elif kind == "assessment_updated":
        details = [", ".join(label("section", s) for s in data if s in ("domains", "daily_living", "living_situation"))]
    elif kind == "flag_corrected":
        verdict = i18n.gettext("confirmed") if data.get("correct") else i18n.gettext("not confirmed")
        details = [f"{concept_label(str(data.get('concept', '')))}: {verdict}", str(data.get("note") or "")]
    elif kind == "task_created":
        details = [
            task_text(data.get("kind"), data.get("description")),
            _named(DOMAIN, label("domain", data.get("domain"))),
        ]
        if data.get("owner"):
            details.append(_named(OWNER, data["owner"]))
        if data.get("due_at"):
            details.append(_named(DUE, _when(data["due_at"], timezone)))
    elif kind == "task_updated":
        details = _task(data, tasks, timezone)
    elif kind == "handoff_created":
        details = [label("destination", data.get("destination_type")), str(data.get("organisation") or "")]
    elif kind == "handoff_updated":
        details = _handoff(data, handoffs, documents, timezone)
    elif kind == "barrier_added":
        details = [label("barrier", data.get("code"))]
        if data.get("owner"):
            details.append(_named(OWNER, data["owner"]))
    elif kind == "barrier_updated":
        details = [barriers.get(int(data.get("barrier_id") or 0), ""), *_field_changes(data, timezone)]
    elif kind in CONTACT_TITLES:
        details = contact_details(kind, data, timezone)
    elif kind in REFERRAL_TITLES:
        details = referral_details(kind, data)
    title = TITLES.get(kind)
    return {
        "at": event.at,
        "actor": event.actor,
        "kind": kind,
        "title": i18n.gettext(title) if title else kind,
        "details": [d for d in details if d],
    }
