"""Record and read the access log."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO

from sqlalchemy import insert
from sqlmodel import Session, col, select

from discharge_bridge.access.models import AccessLogEntry, AccessLogPatient
from discharge_bridge.db import utcnow
from discharge_bridge.spreadsheet import write_rows

PAGE_MAX = 500


def record_view(session: Session, *, user: str, route: str, patients: Iterable[tuple[int, str]]) -> int | None:
    """One entry for one request that showed these patients' identity; ``None`` when it showed none.

    Written in the caller's transaction (flushed, not committed): a view that fails is not logged
    as seen, and a list of 50 patients is two statements, not 51.
    """
    shown = list(dict.fromkeys(patients))
    if not shown:
        return None
    entry = AccessLogEntry(at=utcnow(), username=user, route=route, patient_count=len(shown))
    session.add(entry)
    session.flush()
    session.execute(
        insert(AccessLogPatient),
        [{"entry_id": entry.id, "source_id": source_id, "patient_fhir_id": pid} for source_id, pid in shown],
    )
    return entry.id


@dataclass(frozen=True)
class AccessQuery:
    """Filters of a search; all optional. ``before_id`` pages backwards by keyset (newest first)."""

    username: str | None = None
    source_id: int | None = None
    patient_fhir_id: str | None = None
    route: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None
    limit: int = 100


@dataclass(frozen=True)
class AccessRow:
    id: int
    at: datetime
    username: str
    route: str
    patients: tuple[tuple[int, str], ...]


def search_access(
    session: Session, query: AccessQuery, *, source_ids: tuple[int, ...] | None = None
) -> list[AccessRow]:
    """Entries newest first. ``source_ids`` narrows to patients of those hospitals (``None``: all)."""
    stmt = select(AccessLogEntry).order_by(col(AccessLogEntry.id).desc()).limit(min(max(query.limit, 1), PAGE_MAX))
    if query.username:
        stmt = stmt.where(AccessLogEntry.username == query.username)
    if query.route:
        stmt = stmt.where(AccessLogEntry.route == query.route)
    if query.since is not None:
        stmt = stmt.where(col(AccessLogEntry.at) >= query.since)
    if query.until is not None:
        stmt = stmt.where(col(AccessLogEntry.at) < query.until)
    if query.before_id is not None:
        stmt = stmt.where(col(AccessLogEntry.id) < query.before_id)
    shown = select(AccessLogPatient.entry_id)
    narrowed = False
    if query.source_id is not None:
        shown, narrowed = shown.where(AccessLogPatient.source_id == query.source_id), True
    if query.patient_fhir_id:
        shown, narrowed = shown.where(AccessLogPatient.patient_fhir_id == query.patient_fhir_id), True
    if source_ids is not None:
        shown, narrowed = shown.where(col(AccessLogPatient.source_id).in_(source_ids)), True
    if narrowed:
        stmt = stmt.where(col(AccessLogEntry.id).in_(shown))
    entries = session.exec(stmt).all()
    if not entries:
        return []
    rows = session.exec(
        select(AccessLogPatient)
        .where(col(AccessLogPatient.entry_id).in_([e.id for e in entries]))
        .order_by(col(AccessLogPatient.id))
    ).all()
    by_entry: dict[int, list[tuple[int, str]]] = {}
    for row in rows:
        if source_ids is None or row.source_id in source_ids:
            by_entry.setdefault(row.entry_id, []).append((row.source_id, row.patient_fhir_id))
    return [
        AccessRow(e.id, e.at, e.username, e.route, tuple(by_entry.get(e.id, ())))  # type: ignore[arg-type]
        for e in entries
    ]


def iter_access(
    session: Session, query: AccessQuery, *, source_ids: tuple[int, ...] | None = None
) -> Iterator[AccessRow]:
    """Every matching entry, newest first, read page by page (for the CSV export)."""
    before = query.before_id
    while True:
        page = search_access(
            session, AccessQuery(**{**query.__dict__, "before_id": before, "limit": PAGE_MAX}), source_ids=source_ids
        )
        yield from page
        if len(page) < PAGE_MAX:
            return
        before = page[-1].id


def write_csv(rows: Iterable[AccessRow], out: IO[str]) -> None:
    """One CSV line per patient shown: when, who, route, hospital id, patient id (text that a spreadsheet
    would read as a formula quoted: an id is the EHR's)."""
    header = ["entry_id", "at", "username", "route", "source_id", "patient_fhir_id"]
    lines = ([r.id, r.at.isoformat(), r.username, r.route, sid, pid] for r in rows for sid, pid in r.patients)
    write_rows(out, header, lines)
