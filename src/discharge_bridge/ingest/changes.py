"""What changed: the patients to re-assess, queued in the caller's transaction (the outbox).

Ingest only writes here; the assessment stage above it (``discharge_bridge.assessment``) reads and
deletes. Every writer of snapshots goes through ``store.upsert_snapshots``, which calls
``enqueue_patients``, so polls, files, push, backfill and dead-letter replays are all covered.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Table, func, select
from sqlmodel import Session

from discharge_bridge.db import insert_for, utcnow
from discharge_bridge.ingest.models import AssessmentQueueEntry

QUEUE: Table = AssessmentQueueEntry.__table__  # type: ignore[attr-defined]
_CHUNK = 500


def enqueue_patients(session: Session, source_id: int, patient_ids: Iterable[str]) -> int:
    """Queue these patients for assessment; a patient already queued is raised a generation."""
    ids = sorted(set(patient_ids))
    if not ids:
        return 0
    now = utcnow()
    for start in range(0, len(ids), _CHUNK):
        rows = [
            {"source_id": source_id, "patient_fhir_id": pid, "generation": 1, "enqueued_at": now, "attempts": 0}
            for pid in ids[start : start + _CHUNK]
        ]
        stmt = insert_for(session, QUEUE)
        stmt = stmt.on_conflict_do_update(
            index_elements=["source_id", "patient_fhir_id"],
            set_={
                "generation": QUEUE.c.generation + 1,
                "enqueued_at": stmt.excluded.enqueued_at,
                "attempts": 0,  # new data: the earlier failures may not apply any more
                "last_error": None,
            },
        )
        session.execute(stmt, rows)
    return len(ids)


def queue_depths(session: Session, source_ids: Iterable[int] | None = None) -> dict[int, int]:
    """Patients waiting for assessment, per source (sources with none are absent)."""
    query = select(QUEUE.c.source_id, func.count()).group_by(QUEUE.c.source_id)
    if source_ids is not None:
        query = query.where(QUEUE.c.source_id.in_(list(source_ids)))
    return {int(sid): int(n) for sid, n in session.execute(query)}
