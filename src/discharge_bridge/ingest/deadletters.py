"""Listing and replaying dead letters.

A replay re-reads the resource from the EHR when its type and id are known (the hospital may have
fixed it there); otherwise the stored payload is parsed again (a mapping or code fix on our side).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlmodel import Session, col, select

from discharge_bridge import keyset
from discharge_bridge.db import utcnow
from discharge_bridge.fhir import FhirClient, FhirError, FhirNotFound
from discharge_bridge.fhir.fields import zone
from discharge_bridge.ingest.models import DeadLetter
from discharge_bridge.ingest.pipeline import parse_batch
from discharge_bridge.ingest.store import upsert_snapshots
from discharge_bridge.sources.models import Source, SourceMode

LETTER_SORT = "letters"  # the cursor's sort name: the most recently seen first
_LETTER_KEYS = [keyset.Key(col(DeadLetter.last_seen), descending=True), keyset.Key(col(DeadLetter.id), descending=True)]


def list_dead_letters(
    session: Session,
    *,
    source_id: int | None = None,
    include_resolved: bool = False,
    limit: int = 200,
    after: str | None = None,
) -> list[DeadLetter]:
    """Dead letters, the most recently seen first, ``limit`` of them after the cursor ``after``
    (``keyset.InvalidCursor`` when it is not one of this list's, or points into another source)."""
    where: list[Any] = []
    if source_id is not None:
        where.append(col(DeadLetter.source_id) == source_id)
    if not include_resolved:
        where.append(col(DeadLetter.resolved_at).is_(None))
    if after is not None:
        last_id = keyset.decode(after, LETTER_SORT)
        anchor_query = select(*(k.expression for k in _LETTER_KEYS)).where(col(DeadLetter.id) == last_id)
        if source_id is not None:
            anchor_query = anchor_query.where(col(DeadLetter.source_id) == source_id)
        anchor = session.execute(anchor_query).first()
        if anchor is None:
            raise keyset.InvalidCursor("the dead letter it points after is gone")
        where.append(keyset.after(_LETTER_KEYS, list(anchor)))
    query = select(DeadLetter).where(*where).order_by(*keyset.order_by(_LETTER_KEYS)).limit(limit)
    return list(session.exec(query))


def next_letters_cursor(letters: list[DeadLetter], limit: int) -> str | None:
    """The cursor after a page read with ``limit + 1``: None when that extra row did not come."""
    if len(letters) <= limit or limit == 0:
        return None
    last = letters[limit - 1].id
    assert last is not None
    return keyset.encode(LETTER_SORT, last)


@dataclass
class ReplayOutcome:
    dead_letter_id: int
    resolved: bool
    detail: str


def _fresh_copy(letter: DeadLetter, client: FhirClient | None) -> Any:
    if client is not None and letter.resource_type and letter.fhir_id:
        try:
            return client.read(letter.resource_type, letter.fhir_id)
        except FhirNotFound:
            return None
    try:
        return orjson.loads(letter.payload)
    except orjson.JSONDecodeError:
        return letter.payload


def replay(session: Session, letter: DeadLetter, source: Source, client: FhirClient | None) -> ReplayOutcome:
    """Try one dead letter again through the normal ingest path, in the caller's transaction."""
    assert letter.id is not None
    use_client = client if source.mode != SourceMode.file else None
    try:
        resource = _fresh_copy(letter, use_client)
    except FhirError as exc:
        return ReplayOutcome(letter.id, False, f"could not re-read from the EHR: {exc}")
    if resource is None:
        letter.resolved_at = utcnow()
        letter.error = "deleted on the EHR; nothing to ingest"
        session.add(letter)
        return ReplayOutcome(letter.id, True, letter.error)
    if isinstance(resource, str):
        letter.last_seen = utcnow()
        session.add(letter)
        return ReplayOutcome(letter.id, False, f"still not JSON: {letter.error}")
    parsed = parse_batch([resource], tz=zone(source.timezone))
    if parsed.rejected:
        letter.error = parsed.rejected[0][1]
        letter.last_seen = utcnow()
        session.add(letter)
        return ReplayOutcome(letter.id, False, f"still unusable: {letter.error}")
    assert source.id is not None
    upsert_snapshots(session, source.id, parsed.rows)
    letter.resolved_at = utcnow()
    session.add(letter)
    return ReplayOutcome(letter.id, True, "ingested")
