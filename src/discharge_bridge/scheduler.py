"""Scheduled jobs. For now: poll each enabled source at its own interval."""

from __future__ import annotations

import logging

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from discharge_bridge.db import get_engine, session_scope
from discharge_bridge.ingest.poll import sync_source
from discharge_bridge.sources.service import list_sources

log = logging.getLogger(__name__)


def poll_job(source_name: str) -> None:
    """One pass; failures are recorded on the source and never stop the scheduler."""
    result = sync_source(source_name, engine=get_engine())
    log.info(
        "sync %s: %s fetched=%d new=%d updated=%d dead_letters=%d",
        source_name,
        result.status,
        result.fetched,
        result.created,
        result.updated,
        result.dead_letters,
    )


def run_polling_forever(only: str | None = None) -> None:
    scheduler = BlockingScheduler(timezone="UTC")
    with session_scope(get_engine()) as session:
        sources = [s for s in list_sources(session) if s.enabled and (only is None or s.name == only)]
    for source in sources:
        scheduler.add_job(
            poll_job,
            "interval",
            seconds=source.poll_interval_seconds,
            args=[source.name],
            id=f"poll:{source.name}",
            max_instances=1,
            coalesce=True,
            next_run_time=None,
        )
        poll_job(source.name)
    scheduler.start()


def start_background_polling() -> BackgroundScheduler:
    """Polling jobs in a thread of the web process (the embedded default: one process)."""
    scheduler = BackgroundScheduler(timezone="UTC")
    with session_scope(get_engine()) as session:
        sources = [s for s in list_sources(session) if s.enabled]
    for source in sources:
        scheduler.add_job(
            poll_job,
            "interval",
            seconds=source.poll_interval_seconds,
            args=[source.name],
            id=f"poll:{source.name}",
            max_instances=1,
            coalesce=True,
        )
    scheduler.start()
    return scheduler
