"""The morning worklist of each hospital: built by the scheduler, read by the worklist page and API.

``MorningList.items`` has this shape (FHIR ids and reasons; no names, birth dates or identifiers):

    {"new_flags": [{"case_id", "encounter", "patient", "priority", "score", "concepts", "reasons",
                    "ward", "bed", "coordinator", "flagged_at"}],
     "due_tasks": [{"task_id", "case_id", "encounter", "description", "kind", "priority", "due_at",
                    "overdue", "owner", "coordinator"}],
     "counts": {"new_flags", "due_today", "overdue"}}
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from discharge_bridge.worklists.models import MorningList


def latest_for(session: Session, source_ids: list[int] | None) -> list[MorningList]:
    """The newest morning list of each visible hospital (None = every hospital)."""
    query = select(MorningList).order_by(col(MorningList.source_id), col(MorningList.local_date).desc())
    if source_ids is not None:
        query = query.where(col(MorningList.source_id).in_(source_ids))
    newest: dict[int, MorningList] = {}
    for row in session.exec(query):
        newest.setdefault(row.source_id, row)
    return list(newest.values())
