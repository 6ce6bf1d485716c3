"""A sync pass followed by the assessment of what it changed: what the CLI, scheduler and demo run."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from discharge_bridge.assessment.stage import AssessmentStats, drain
from discharge_bridge.config import Settings, get_settings
from discharge_bridge.db import session_scope
from discharge_bridge.fhir import FhirClient
from discharge_bridge.ingest.poll import sync_source
from discharge_bridge.ingest.writer import Progress, SyncResult
from discharge_bridge.sources.models import SyncStatus
from discharge_bridge.sources.service import get_source


def sync_and_assess(
    source_name: str,
    *,
    engine: Engine,
    settings: Settings | None = None,
    client: FhirClient | None = None,
    progress: Progress | None = None,
    stop_after_pages: int | None = None,
) -> SyncResult:
    """One pass, then drain the source's queue: this pass's changes and any a crash left behind.

    Pages committed before a failed pass are assessed too: their rows are stored and queued.
    """
    settings = settings or get_settings()
    result = sync_source(
        source_name,
        engine=engine,
        settings=settings,
        client=client,
        progress=progress,
        stop_after_pages=stop_after_pages,
    )
    return assess_source(result, source_name, engine=engine, settings=settings)


def assess_source(result: SyncResult, source_name: str, *, engine: Engine, settings: Settings) -> SyncResult:
    """Drain the source's queue after a pass (poll, backfill, push) and report it on the pass's result."""
    with session_scope(engine) as session:
        source_id = get_source(session, source_name).id
    return apply(result, drain(engine, settings, source_id=source_id))


def apply(result: SyncResult, stats: AssessmentStats) -> SyncResult:
    """Report a drain on a pass's result (a blocked drain fails the result with its reason)."""
    result.assessed += stats.assessed
    result.flagged += stats.flagged
    result.cases_opened += stats.cases_opened
    result.discharged += stats.discharged
    if stats.error:
        result.status = SyncStatus.failed
        result.error = stats.error
    return result
