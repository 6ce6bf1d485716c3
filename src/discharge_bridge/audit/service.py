"""Record and read the audit trail of administration."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, NamedTuple

from sqlmodel import Session, col, select

from discharge_bridge.audit.models import AdminAction, AdminAuditEntry
from discharge_bridge.db import utcnow
from discharge_bridge.spreadsheet import write_rows

PAGE_MAX = 500
REDACTED = "[redacted]"
# A detail whose key names a secret is never stored, whatever the caller passed.
_SECRET_KEY = re.compile(r"pass(word)?|secret|token|private|credential|api[_-]?key|^key$", re.IGNORECASE)
# Keys that name a secret's *name* or *place*, never its value (see sources: --token-env, --password-file).
_REFERENCE_KEY = re.compile(r"_(env|file|name|prefix|id)$", re.IGNORECASE)


class Target(NamedTuple):
    """What an action was done to: a kind ("user", "token", "source", "account", "address"...) and its name or id."""

    kind: str
    name: str


def _clean(details: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in details.items():
        if _SECRET_KEY.search(key) and not _REFERENCE_KEY.search(key):
            out[key] = REDACTED
        elif isinstance(value, Mapping):
            out[key] = _clean(value)
        else:
            out[key] = value
    return out


def record_admin_action(
    session: Session,
    actor: str,
    action: AdminAction | str,
    target: Target | tuple[str, str],
    details: Mapping[str, Any] | None = None,
    *,
    at: datetime | None = None,
) -> AdminAuditEntry:
    """One entry, written in the caller's transaction (flushed, not committed): the change and its
    record commit or roll back together. ``details`` must be JSON-serialisable; secrets are redacted."""
    kind, name = target
    entry = AdminAuditEntry(
        at=at or utcnow(),
        actor=actor[:200],
        action=str(action)[:40],
        target_kind=str(kind)[:40],
        target_name=str(name)[:200],
        details=json.loads(json.dumps(_clean(details or {}), default=str)),
    )
    session.add(entry)
    session.flush()
    return entry


@dataclass(frozen=True)
class AuditQuery:
    """Filters of a search; all optional. ``before_id`` pages backwards by keyset (newest first)."""

    actor: str | None = None
    action: str | None = None
    target_kind: str | None = None
    target_name: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None
    limit: int = 100


def search_audit(session: Session, query: AuditQuery) -> list[AdminAuditEntry]:
    """Entries newest first."""
    stmt = select(AdminAuditEntry).order_by(col(AdminAuditEntry.id).desc()).limit(min(max(query.limit, 1), PAGE_MAX))
    if query.actor:
        stmt = stmt.where(AdminAuditEntry.actor == query.actor)
    if query.action:
        stmt = stmt.where(AdminAuditEntry.action == query.action)
    if query.target_kind:
        stmt = stmt.where(AdminAuditEntry.target_kind == query.target_kind)
    if query.target_name:
        stmt = stmt.where(AdminAuditEntry.target_name == query.target_name)
    if query.since is not None:
        stmt = stmt.where(col(AdminAuditEntry.at) >= query.since)
    if query.until is not None:
        stmt = stmt.where(col(AdminAuditEntry.at) < query.until)
    if query.before_id is not None:
        stmt = stmt.where(col(AdminAuditEntry.id) < query.before_id)
    return list(session.exec(stmt))


def iter_audit(session: Session, query: AuditQuery) -> Iterator[AdminAuditEntry]:
    """Every matching entry, newest first, read page by page (for the CSV export)."""
    before = query.before_id
    while True:
        page = search_audit(session, AuditQuery(**{**query.__dict__, "before_id": before, "limit": PAGE_MAX}))
        yield from page
        if len(page) < PAGE_MAX:
            return
        before = page[-1].id


CSV_COLUMNS = ["id", "at", "actor", "action", "target_kind", "target_name", "details"]


def write_csv(entries: Iterable[AdminAuditEntry], out: IO[str]) -> None:
    """One line per entry; details as compact JSON; text that a spreadsheet would read as a formula is quoted."""

    def row(e: AdminAuditEntry) -> list[object]:
        details = json.dumps(e.details, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        return [e.id, e.at.isoformat(), e.actor, e.action, e.target_kind, e.target_name, details]

    write_rows(out, CSV_COLUMNS, (row(e) for e in entries))
