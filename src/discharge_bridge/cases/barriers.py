"""Coded barriers to discharge: several may be open at once; each counts its own delayed days."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from discharge_bridge.cases.errors import InvalidInput, check_version, ensure_open, refuse_nulls
from discharge_bridge.cases.events import EventKind, changes, record_event
from discharge_bridge.cases.models import Barrier, BarrierCode, Case
from discharge_bridge.db import utcnow

EDITABLE = frozenset({"owner", "note", "started_at", "ended_at"})


def delayed_days(barrier: Barrier, now: datetime | None = None) -> float:
    """Days the barrier has held (to its end, or to now while open), one decimal."""
    end = barrier.ended_at or now or utcnow()
    return round(max((end - barrier.started_at).total_seconds(), 0) / 86400, 1)


def add_barrier(
    session: Session,
    case: Case,
    *,
    actor: str,
    code: BarrierCode,
    owner: str | None = None,
    note: str | None = None,
    started_at: datetime | None = None,
) -> Barrier:
    """Record a barrier on an open case, started now unless told when."""
    ensure_open(case)
    assert case.id is not None
    barrier = Barrier(
        case_id=case.id, code=code, owner=owner, note=note, started_at=started_at or utcnow(), created_by=actor
    )
    session.add(barrier)
    session.flush()
    record_event(
        session,
        case,
        actor=actor,
        kind=EventKind.barrier_added,
        data={"barrier_id": barrier.id, "code": code, "owner": owner, "started_at": barrier.started_at},
    )
    return barrier


def update_barrier(
    session: Session, case: Case, barrier: Barrier, *, actor: str, expected_version: int | None = None, **values: Any
) -> bool:
    """Change owner / note / start, or end the barrier (``ended_at``; None reopens it). A barrier
    always has a start: ``started_at`` may be moved, never cleared."""
    refuse_nulls(values, {"started_at"})
    ensure_open(case)
    check_version(f"barrier {barrier.id}", barrier.version, expected_version)
    unknown = set(values) - EDITABLE
    if unknown:
        raise TypeError(f"not editable: {sorted(unknown)}")
    started = values.get("started_at", barrier.started_at)
    ended = values.get("ended_at", barrier.ended_at)
    if ended is not None and ended < started:
        raise InvalidInput(("body", "ended_at"), "ended_at is before started_at")
    changed = changes(barrier, values)
    if not changed:
        return False
    session.add(barrier)
    session.flush()
    record_event(session, case, actor=actor, kind=EventKind.barrier_updated, data={"barrier_id": barrier.id, **changed})
    return True


def end_barrier(
    session: Session,
    case: Case,
    barrier: Barrier,
    *,
    actor: str,
    expected_version: int | None = None,
    at: datetime | None = None,
) -> bool:
    """End the barrier at ``at``, or now: the delay stops counting."""
    return update_barrier(
        session, case, barrier, actor=actor, expected_version=expected_version, ended_at=at or utcnow()
    )


def end_open_barriers(session: Session, case: Case, at: datetime) -> list[int]:
    """End every open barrier at ``at`` (the discharge): delays stop counting when the bed is freed.

    Returns the ids ended; the caller's event records them.
    """
    open_ = session.exec(select(Barrier).where(Barrier.case_id == case.id, col(Barrier.ended_at).is_(None))).all()
    for barrier in open_:
        barrier.ended_at = max(at, barrier.started_at)
        session.add(barrier)
    return [b.id or 0 for b in open_]
