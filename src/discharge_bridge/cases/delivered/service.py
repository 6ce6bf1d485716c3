"""Recording services delivered against a case, and striking out one recorded by mistake.

A row is never edited: a mistake is struck out (who, when) and recorded again, so the counts the
city reports can be traced. Each change writes one case event in the same transaction
(``service_recorded`` / ``service_struck``). The kind must be in the catalogue and open to the
recorder's role; the time may not lie in the future (a small clock skew aside); a referral named
must be one of the case's own.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from sqlmodel import Session

from discharge_bridge.cases.delivered.catalogue import CatalogueEntry, catalogue, entry_of
from discharge_bridge.cases.delivered.models import ServiceDelivered
from discharge_bridge.cases.errors import CoordinationError, InvalidInput
from discharge_bridge.cases.events import EventKind, record_event
from discharge_bridge.cases.models import Case
from discharge_bridge.cases.referrals.models import Referral
from discharge_bridge.db import utcnow
from discharge_bridge.users.roles import Role

__all__ = ["AlreadyStruck", "CatalogueEntry", "catalogue", "may_strike", "record_service", "strike_service"]

SKEW = timedelta(minutes=5)  # a browser's clock a little ahead of the server's is not "the future"
NOTE_MAX = 2000


class AlreadyStruck(CoordinationError):
    status_code = 409

    def __init__(self, row_id: int | None) -> None:
        super().__init__(f"service delivered {row_id} was struck out already")


def record_service(
    session: Session,
    case: Case,
    *,
    kind: str,
    delivered_at: datetime | None,
    actor: str,
    role: Role | str,
    note: str | None = None,
    referral_id: int | None = None,
    mappings_dir: Path | None = None,
    loc: str = "body",
) -> ServiceDelivered:
    """One service delivered (``delivered_at`` None: now); InvalidInput names the field at fault."""
    assert case.id is not None
    entry = entry_of(kind, mappings_dir)
    if entry is None:
        known = ", ".join(e.code for e in catalogue(mappings_dir))
        raise InvalidInput((loc, "kind"), f"unknown kind {kind!r}; the catalogue has: {known}")
    if not entry.may_record(Role(role)):
        allowed = ", ".join(r.value for r in entry.roles)
        raise InvalidInput((loc, "kind"), f"a {Role(role).value} may not record {kind!r} (recorded by: {allowed})")
    now = utcnow()
    when = delivered_at or now
    if when > now + SKEW:
        raise InvalidInput((loc, "delivered_at"), "a service delivered cannot lie in the future")
    note = (note or "").strip() or None
    if note is not None and len(note) > NOTE_MAX:
        raise InvalidInput((loc, "note"), f"at most {NOTE_MAX} characters")
    if referral_id is not None:
        referral = session.get(Referral, referral_id)
        if referral is None or referral.case_id != case.id:
            raise InvalidInput((loc, "referral_id"), f"referral {referral_id} is not one of case {case.id}'s")
    row = ServiceDelivered(
        case_id=case.id,
        kind=kind,
        delivered_at=when,
        delivered_by=actor,
        role=Role(role).value,
        referral_id=referral_id,
        note=note,
        recorded_at=now,
    )
    session.add(row)
    session.flush()
    record_event(
        session,
        case,
        actor=actor,
        kind=EventKind.service_recorded,
        at=now,
        data={"service_delivered_id": row.id, "kind": kind, "delivered_at": when, "referral_id": referral_id},
    )
    return row


def may_strike(row: ServiceDelivered, *, actor: str, role: Role | str) -> bool:
    """A psychologist strikes out only what they recorded; a coordinator or an admin, any row of a case
    they may see (the caller has checked that)."""
    return Role(role) != Role.psychologist or row.delivered_by == actor


def strike_service(session: Session, row: ServiceDelivered, *, actor: str) -> ServiceDelivered:
    """Strike out a row recorded by mistake (it stays, no longer counted); twice is AlreadyStruck."""
    if row.cancelled_at is not None:
        raise AlreadyStruck(row.id)
    case = session.get(Case, row.case_id)
    assert case is not None  # the foreign key guarantees it
    now = utcnow()
    row.cancelled_at = now
    row.cancelled_by = actor
    session.add(row)
    session.flush()
    record_event(
        session,
        case,
        actor=actor,
        kind=EventKind.service_struck,
        at=now,
        data={"service_delivered_id": row.id, "kind": row.kind},
    )
    return row
