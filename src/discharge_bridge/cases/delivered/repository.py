"""Reads of services delivered: a case's rows (scoped through the case), and the city-wide list by id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from discharge_bridge.cases.delivered.models import ServiceDelivered
from discharge_bridge.cases.models import Case


def services_of_case(session: Session, case_id: int, *, include_struck: bool = True) -> list[ServiceDelivered]:
    query = select(ServiceDelivered).where(ServiceDelivered.case_id == case_id)
    if not include_struck:
        query = query.where(col(ServiceDelivered.cancelled_at).is_(None))
    return list(session.exec(query.order_by(col(ServiceDelivered.delivered_at), col(ServiceDelivered.id))))


def get_service_delivered(
    session: Session, row_id: int, *, source_ids: list[int] | None = None
) -> ServiceDelivered | None:
    """The row if its case is of a hospital in ``source_ids`` (None: any)."""
    query = select(ServiceDelivered).join(Case, col(Case.id) == ServiceDelivered.case_id)
    query = query.where(ServiceDelivered.id == row_id)
    if source_ids is not None:
        query = query.where(col(Case.source_id).in_(source_ids))
    return session.exec(query).first()


@dataclass(frozen=True)
class DeliveredQuery:
    """Filters of the city-wide list; ``after`` is the last id of the previous page (keyset)."""

    source_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    kind: str | None = None
    include_struck: bool = False
    after: int | None = None
    limit: int = 100


def search_delivered(
    session: Session, query: DeliveredQuery, *, source_ids: list[int] | None = None
) -> list[tuple[ServiceDelivered, int]]:
    """(row, the case's hospital) by id ascending, delivered in [since, until), scoped to ``source_ids``."""
    stmt = (
        select(ServiceDelivered, Case.source_id)
        .join(Case, col(Case.id) == ServiceDelivered.case_id)
        .order_by(col(ServiceDelivered.id))
        .limit(query.limit)
    )
    if source_ids is not None:
        stmt = stmt.where(col(Case.source_id).in_(source_ids))
    if query.source_id is not None:
        stmt = stmt.where(Case.source_id == query.source_id)
    if query.since is not None:
        stmt = stmt.where(col(ServiceDelivered.delivered_at) >= query.since)
    if query.until is not None:
        stmt = stmt.where(col(ServiceDelivered.delivered_at) < query.until)
    if query.kind:
        stmt = stmt.where(ServiceDelivered.kind == query.kind)
    if not query.include_struck:
        stmt = stmt.where(col(ServiceDelivered.cancelled_at).is_(None))
    if query.after is not None:
        stmt = stmt.where(col(ServiceDelivered.id) > query.after)
    return [(row, source_id) for row, source_id in session.exec(stmt).all()]
