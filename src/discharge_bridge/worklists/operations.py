"""The service's state per hospital, read in a handful of grouped queries (what /metrics shows).

Every figure is keyed by source id and limited to ``scope`` (None = every source), so one scrape
costs the same few queries however many hospitals there are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from discharge_bridge.cases.models import Case, CaseStatus
from discharge_bridge.cases.tasks.models import TASK_TRANSITIONS, Task
from discharge_bridge.ingest.changes import QUEUE
from discharge_bridge.ingest.models import DeadLetter
from discharge_bridge.sources.models import Source, SyncRun, SyncStatus


@dataclass(frozen=True)
class OperationsFigures:
    sources: list[Source]
    last_run_status: dict[int, str]  # the latest finished sync run's status
    failed_runs: dict[int, int]
    dead_letters_open: dict[int, int]
    assessment_queue: dict[int, int]
    tasks_overdue: dict[int, int]
    open_cases: dict[tuple[int, str], int]  # (source id, priority or "none")


def read_figures(session: Session, scope: list[int] | None, now: datetime) -> OperationsFigures:
    def by_source(query: Any) -> dict[int, int]:
        if scope is not None:
            query = query.where(col(query.selected_columns[0]).in_(scope))
        return {source_id: count for source_id, count in session.exec(query)}

    sources_query = select(Source).order_by(col(Source.name))
    if scope is not None:
        sources_query = sources_query.where(col(Source.id).in_(scope))
    latest = (
        select(SyncRun.source_id, func.max(SyncRun.id))
        .where(col(SyncRun.finished_at).is_not(None))
        .group_by(col(SyncRun.source_id))
    )
    latest_ids = list(by_source(latest).values())
    last_status = dict(
        session.exec(select(SyncRun.source_id, SyncRun.status).where(col(SyncRun.id).in_(latest_ids))).all()
    )
    overdue = (
        select(Case.source_id, func.count())
        .join(Task, col(Task.case_id) == col(Case.id))
        .where(col(Task.status).in_(list(TASK_TRANSITIONS.active)), col(Task.due_at) < now)
        .group_by(col(Case.source_id))
    )
    cases_query = (
        select(Case.source_id, Case.priority, func.count())
        .where(Case.status == CaseStatus.open)
        .group_by(col(Case.source_id), col(Case.priority))
    )
    if scope is not None:
        cases_query = cases_query.where(col(Case.source_id).in_(scope))
    return OperationsFigures(
        sources=list(session.exec(sources_query)),
        last_run_status={k: str(v) for k, v in last_status.items()},
        failed_runs=by_source(
            select(SyncRun.source_id, func.count())
            .where(SyncRun.status == SyncStatus.failed)
            .group_by(col(SyncRun.source_id))
        ),
        dead_letters_open=by_source(
            select(DeadLetter.source_id, func.count())
            .where(col(DeadLetter.resolved_at).is_(None))
            .group_by(col(DeadLetter.source_id))
        ),
        assessment_queue=by_source(select(QUEUE.c.source_id, func.count()).group_by(QUEUE.c.source_id)),
        tasks_overdue=by_source(overdue),
        open_cases={(source_id, priority or "none"): n for source_id, priority, n in session.exec(cases_query)},
    )
