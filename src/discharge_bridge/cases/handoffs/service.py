"""Handoffs: proposing a destination, moving it through referral to completion (along
``HANDOFF_TRANSITIONS`` in handoffs/models.py), ticking documents.

A handoff completes with its documents: every document of its checklist (the destination's list in
mappings/handoff_documents.yaml, copied when the handoff was proposed) must be ticked, unless the
coordinator records an override with a reason. The override (who, when, why, which documents were
missing) stays on the handoff and in the timeline. The page and the API both come here, so neither
can complete a handoff the other would refuse.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session

from discharge_bridge.cases.discharge import close_if_done
from discharge_bridge.cases.errors import CoordinationError, InvalidInput, check_version, ensure_open, refuse_nulls
from discharge_bridge.cases.events import EventKind, changes, record_event
from discharge_bridge.cases.handoffs.checklist import load_documents
from discharge_bridge.cases.handoffs.models import HANDOFF_TRANSITIONS, DestinationType, Handoff, HandoffStatus
from discharge_bridge.cases.models import Case
from discharge_bridge.db import utcnow

EDITABLE = frozenset({"organisation", "scheduled_for", "note"})
NOT_NULL = frozenset({"status"})  # organisation, time and note may be cleared
OVERRIDE_MAX = 2000


class DocumentsMissing(CoordinationError):
    """A handoff cannot complete while documents of its checklist are not ticked (without an override)."""

    status_code = 409

    def __init__(self, handoff_id: int | None, missing: list[dict[str, Any]]) -> None:
        codes = [str(d["code"]) for d in missing]
        super().__init__(
            f"handoff {handoff_id} cannot complete: documents missing: {', '.join(codes)}; tick them, or complete "
            "it anyway with `override_reason` saying why",
            missing=codes,
        )
        self.missing = missing


def documents_complete(handoff: Handoff) -> bool:
    return all(d.get("done") for d in handoff.documents)


def missing_documents(handoff: Handoff) -> list[dict[str, Any]]:
    """The checklist's documents not ticked, in the checklist's order."""
    return [d for d in handoff.documents if not d.get("done")]


def status_dates(handoff: Handoff) -> dict[str, datetime | None]:
    """When the handoff reached each status (None: not reached), in the statuses' order."""
    return {s.value: getattr(handoff, f"{s.value}_at") for s in HandoffStatus}


def create_handoff(
    session: Session,
    case: Case,
    *,
    actor: str,
    destination_type: DestinationType,
    mappings_dir: Path,
    organisation: str | None = None,
    scheduled_for: datetime | None = None,
    note: str | None = None,
) -> Handoff:
    """Propose a destination; the documents checklist of its type is copied in, unticked."""
    ensure_open(case)
    assert case.id is not None
    documents = load_documents(mappings_dir).checklist(destination_type)
    now = utcnow()
    handoff = Handoff(
        case_id=case.id,
        destination_type=destination_type,
        organisation=organisation,
        scheduled_for=scheduled_for,
        note=note,
        documents=documents,
        proposed_at=now,
        created_by=actor,
        updated_at=now,
    )
    session.add(handoff)
    session.flush()
    record_event(
        session,
        case,
        actor=actor,
        kind=EventKind.handoff_created,
        at=now,
        data={"handoff_id": handoff.id, "destination_type": destination_type, "organisation": organisation},
    )
    return handoff


def _tick(handoff: Handoff, ticks: dict[str, bool], now: datetime) -> dict[str, list[bool]]:
    known = {d["code"] for d in handoff.documents}
    unknown = sorted(set(ticks) - known)
    if unknown:
        raise InvalidInput(
            ("body", "documents", unknown[0]),
            f"unknown document code {unknown[0]!r} for a {handoff.destination_type} handoff; "
            f"its checklist has: {', '.join(sorted(known)) or 'no documents'}",
        )
    changed: dict[str, list[bool]] = {}
    documents = []
    for doc in handoff.documents:
        done = ticks.get(doc["code"], doc["done"])
        if done != doc["done"]:
            changed[doc["code"]] = [doc["done"], done]
            doc = {**doc, "done": done, "done_at": now.isoformat() if done else None}
        documents.append(doc)
    handoff.documents = documents  # a new list: the JSON column notices assignment, not mutation
    return changed


def _override(
    handoff: Handoff, actor: str, reason: str | None, now: datetime, field: tuple[str, ...]
) -> dict[str, Any] | None:
    """The override a completion needs: None when every document is ticked; DocumentsMissing when
    some are not and no reason is given."""
    missing = missing_documents(handoff)
    if not missing:
        return None
    if not reason:
        raise DocumentsMissing(handoff.id, missing)
    if len(reason) > OVERRIDE_MAX:
        raise InvalidInput(field, f"at most {OVERRIDE_MAX} characters")
    return {"by": actor, "at": now.isoformat(), "reason": reason, "missing": [str(d["code"]) for d in missing]}


def update_handoff(
    session: Session,
    case: Case,
    handoff: Handoff,
    *,
    actor: str,
    expected_version: int | None,
    documents: dict[str, bool] | None = None,
    override_reason: str | None = None,
    **values: Any,
) -> bool:
    """Move the ``status`` along HANDOFF_TRANSITIONS (stamping ``<status>_at``), edit the fields in
    EDITABLE, tick ``documents`` by code; ``values`` holds only the fields the caller sends.

    Completing needs every document ticked (``documents`` of this call count), else an
    ``override_reason``: the override is stored on the handoff and in the event; without a reason,
    DocumentsMissing names the missing documents. A reason given while nothing is missing is not
    recorded; one given without completing is an InvalidInput. A handoff that completes closes a
    case whose patient is already discharged.
    """
    refuse_nulls(values, NOT_NULL)
    ensure_open(case)
    check_version(f"handoff {handoff.id}", handoff.version, expected_version)
    status = values.pop("status", None)
    unknown = set(values) - EDITABLE
    if unknown:
        raise TypeError(f"not editable: {sorted(unknown)}")
    reason = (override_reason or "").strip() or None
    field = ("body", "override_reason")
    if reason is not None and status != HandoffStatus.completed:
        raise InvalidInput(field, "an override reason goes with status completed only")
    now = utcnow()
    current = HandoffStatus(handoff.status)
    moving = status is not None and status != current
    if moving:
        HANDOFF_TRANSITIONS.check(f"handoff {handoff.id}", current, status)
    ticked = _tick(handoff, documents, now) if documents else {}  # ticked before the completion counts them
    if moving:
        status = HandoffStatus(status)
        values["status"] = status
        values[f"{status.value}_at"] = now
        if status == HandoffStatus.completed:
            values["documents_override"] = _override(handoff, actor, reason, now, field)
    changed: dict[str, Any] = changes(handoff, values)
    override = changed.pop("documents_override", [None, None])[1]
    if override:  # the event says why and what was missing; who and when are the event's own
        changed["documents_override"] = {"reason": override["reason"], "missing": override["missing"]}
    if ticked:
        changed["documents"] = ticked
    if not changed:
        return False
    handoff.updated_at = now
    session.add(handoff)
    session.flush()
    record_event(session, case, actor=actor, kind=EventKind.handoff_updated, data={"handoff_id": handoff.id, **changed})
    if status == HandoffStatus.completed:
        close_if_done(session, case, actor=actor)
    return True
