"""Handoffs: proposing a destination, moving it through referral to completion (along
``HANDOFF_TRANSITIONS`` in handoffs/models.py), ticking documents."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session

from discharge_bridge.cases.discharge import close_if_done
from discharge_bridge.cases.errors import InvalidInput, check_version, ensure_open, refuse_nulls
from discharge_bridge.cases.events import EventKind, changes, record_event
from discharge_bridge.cases.handoffs.checklist import load_documents
from discharge_bridge.cases.handoffs.models import HANDOFF_TRANSITIONS, DestinationType, Handoff, HandoffStatus
from discharge_bridge.cases.models import Case
from discharge_bridge.db import utcnow

EDITABLE = frozenset({"organisation", "scheduled_for", "note"})
NOT_NULL = frozenset({"status"})  # organisation, time and note may be cleared


def documents_complete(handoff: Handoff) -> bool:
    return all(d.get("done") for d in handoff.documents)


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


def update_handoff(
    session: Session,
    case: Case,
    handoff: Handoff,
    *,
    actor: str,
    expected_version: int | None,
    documents: dict[str, bool] | None = None,
    **values: Any,
) -> bool:
    """Move the ``status`` along HANDOFF_TRANSITIONS (stamping ``<status>_at``), edit the fields in
    EDITABLE, tick ``documents`` by code; ``values`` holds only the fields the caller sends.

    A handoff that completes closes a case whose patient is already discharged.
    """
    refuse_nulls(values, NOT_NULL)
    ensure_open(case)
    check_version(f"handoff {handoff.id}", handoff.version, expected_version)
    status = values.pop("status", None)
    unknown = set(values) - EDITABLE
    if unknown:
        raise TypeError(f"not editable: {sorted(unknown)}")
    now = utcnow()
    current = HandoffStatus(handoff.status)
    if status is not None and status != current:
        HANDOFF_TRANSITIONS.check(f"handoff {handoff.id}", current, status)
        status = HandoffStatus(status)
        values["status"] = status
        values[f"{status.value}_at"] = now
    changed: dict[str, Any] = changes(handoff, values)
    if documents:
        ticked = _tick(handoff, documents, now)
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
