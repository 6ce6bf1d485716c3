"""Scheduled jobs. For now: poll each enabled source at its own interval."""

from __future__ import annotations

import logging

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
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


def add_poll_jobs(scheduler: BaseScheduler, only: str | None = None) -> list[str]:
    """One interval job per enabled source (one run at a time each); returns the source names."""
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
        )
    return [s.name for s in sources]


def run_polling_forever(only: str | None = None) -> None:
    """Poll now, then at each source's interval until stopped (the `sync` command)."""
    scheduler = BlockingScheduler(timezone="UTC")
    for name in add_poll_jobs(scheduler, only):
        poll_job(name)
    scheduler.start()


def start_background_polling() -> BackgroundScheduler:
    """Polling jobs in a thread of the web process (the embedded default: one process)."""
    scheduler = BackgroundScheduler(timezone="UTC")
    add_poll_jobs(scheduler)
    scheduler.start()
    return scheduler
