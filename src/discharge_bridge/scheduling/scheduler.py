"""Which scheduled jobs run when. Job bodies: scheduling/jobs.py; the one leader: scheduling/leader.py
and scheduling/runner.py.

Per enabled source: ``poll:<name>`` at its interval (unless ``poll_by`` is ``workers``: then
``discharge-bridge worker`` processes lease and poll the sources, scheduling/workers.py), and
``morning:<name>`` at the hospital's morning time (``Source.morning_time`` or the
``morning_worklist_time`` setting) in its IANA time zone. Once per scheduler: ``escalation``
(overdue tasks), ``rescore`` (rule / mapping changes),
``sources`` (re-reads the sources each minute so added, changed or removed ones get their jobs)
and ``heartbeat`` (on its own thread, so busy jobs never delay it). Every job runs one instance at
a time, runs missed while busy are coalesced into one, and a run may start late within a grace.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlmodel import col, select

from discharge_bridge.clock import utcnow
from discharge_bridge.config import Settings
from discharge_bridge.db import get_engine, session_scope
from discharge_bridge.scheduling.jobs import (
    assessment_job,
    escalation_job,
    isolated,
    morning_job,
    poll_job,
    rescore_check_job,
    subscriptions_job,
)
from discharge_bridge.sources.models import Source
from discharge_bridge.sources.service import list_sources
from discharge_bridge.subscriptions.recovery import CHECK_INTERVAL_SECONDS as SUBSCRIPTION_CHECK_SECONDS
from discharge_bridge.subscriptions.service import safety_poll_interval
from discharge_bridge.worklists.models import MorningList
from discharge_bridge.worklists.morning import local_day

log = logging.getLogger(__name__)

JOB_DEFAULTS: dict[str, Any] = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 300}
MORNING_GRACE_SECONDS = 3 * 3600  # a scheduler busy (or restarted) at 07:00 still builds the list by 10:00
SOURCES_REFRESH_SECONDS = 60
WORKERS = 10

__all__ = ["add_poll_jobs", "build_scheduler", "poll_job", "run_polling_forever"]


def poll_trigger(source: Source, seconds: int | None = None) -> IntervalTrigger:
    """The one place the poll interval is read: both the `sync` loop and the scheduler use it.

    ``seconds`` overrides it: ``safety_poll_interval``, slower while the EHR pushes notifications.
    """
    return IntervalTrigger(seconds=seconds or source.poll_interval_seconds, timezone=UTC)


def morning_time(source: Source, settings: Settings) -> tuple[int, int]:
    hour, minute = (source.morning_time or settings.morning_worklist_time).split(":")
    return int(hour), int(minute)


def morning_trigger(source: Source, settings: Settings) -> CronTrigger:
    """Every day at the local morning time; CronTrigger follows the zone's DST changes."""
    hour, minute = morning_time(source, settings)
    return CronTrigger(hour=hour, minute=minute, timezone=ZoneInfo(source.timezone))


def add_poll_jobs(scheduler: BaseScheduler, only: str | None = None, *, settings: Settings | None = None) -> list[str]:
    """One interval job per enabled source (one run at a time each); returns the source names."""
    with session_scope(get_engine(settings)) as session:
        sources = [s for s in list_sources(session) if s.enabled and (only is None or s.name == only)]
        intervals = {s.name: safety_poll_interval(session, s) for s in sources}
    for source in sources:
        scheduler.add_job(
            poll_job,
            poll_trigger(source, intervals[source.name]),
            args=[source.name, settings],
            id=f"poll:{source.name}",
            max_instances=1,
            coalesce=True,
        )
    return [s.name for s in sources]


def _morning_due_now(session: Any, source: Source, settings: Settings, now: datetime) -> bool:
    """Within the grace after today's morning time and no list yet: the scheduler was down at the
    time, or took over from one that died. Later in the day the list waits for tomorrow."""
    local_date, _ = local_day(source, now)
    local_now = now.astimezone(ZoneInfo(source.timezone))
    hour, minute = morning_time(source, settings)
    due = local_now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if not due <= local_now < due + timedelta(seconds=MORNING_GRACE_SECONDS):
        return False
    made = session.exec(
        select(MorningList.id).where(MorningList.source_id == source.id, MorningList.local_date == local_date)
    ).first()
    return made is None


class SourceJobs:
    """Keeps each enabled source's poll and morning jobs in step with the source table."""

    def __init__(self, scheduler: BaseScheduler, settings: Settings, *, generated_by: str = "scheduler") -> None:
        self.scheduler = scheduler
        self.settings = settings
        self.generated_by = generated_by
        self._signatures: dict[str, tuple[Any, ...]] = {}

    def refresh(self) -> None:
        """Add jobs for new sources, reschedule changed ones, drop those of removed or disabled ones."""
        now = utcnow()
        wanted: set[str] = set()
        with session_scope(get_engine(self.settings)) as session:
            sources = list(session.exec(select(Source).where(col(Source.enabled).is_(True)).order_by(col(Source.name))))
            for source in sources:
                try:
                    self._source_jobs(session, source, now, wanted)
                except Exception as exc:  # e.g. a zone the tz database lost: the other sources go on
                    log.error("source %s: jobs not scheduled (%s)", source.name, type(exc).__name__)
        for job_id in set(self._signatures) - wanted:
            if self.scheduler.get_job(job_id) is not None:
                self.scheduler.remove_job(job_id)
            del self._signatures[job_id]
            log.info("scheduler: removed job %s", job_id)

    def _source_jobs(self, session: Any, source: Source, now: datetime, wanted: set[str]) -> None:
        assert source.id is not None
        poll_id, morning_id = f"poll:{source.name}", f"morning:{source.name}"
        if self.settings.poll_by == "scheduler":  # else `discharge-bridge worker` processes lease and poll it
            wanted.add(poll_id)
            trigger = poll_trigger(source, safety_poll_interval(session, source))
            poll_sig = ("poll", trigger.interval.total_seconds())
            if self._signatures.get(poll_id) != poll_sig:
                self.scheduler.add_job(
                    poll_job, trigger, args=[source.name, self.settings], id=poll_id, replace_existing=True
                )
                self._signatures[poll_id] = poll_sig
        wanted.add(morning_id)
        morning_sig = ("morning", source.id, source.timezone, morning_time(source, self.settings))
        if self._signatures.get(morning_id) != morning_sig:
            extra: dict[str, Any] = {}
            if _morning_due_now(session, source, self.settings, now):
                extra["next_run_time"] = now  # today's list is missing: build it now, then daily
            self.scheduler.add_job(
                morning_job,
                morning_trigger(source, self.settings),
                args=[source.id, self.settings, self.generated_by],
                id=morning_id,
                replace_existing=True,
                misfire_grace_time=MORNING_GRACE_SECONDS,
                **extra,
            )
            self._signatures[morning_id] = morning_sig


def build_scheduler(
    settings: Settings, *, heartbeat: Callable[[], None] | None = None, generated_by: str = "scheduler"
) -> BackgroundScheduler:
    """A scheduler with every job, not started. ``heartbeat`` runs every ``scheduler_heartbeat_seconds``."""
    scheduler = BackgroundScheduler(
        timezone=UTC,
        job_defaults=JOB_DEFAULTS,
        executors={"default": ThreadPoolExecutor(WORKERS), "heartbeat": ThreadPoolExecutor(1)},
    )
    sources = SourceJobs(scheduler, settings, generated_by=generated_by)
    sources.refresh()
    now = utcnow()
    scheduler.add_job(isolated(sources.refresh), IntervalTrigger(seconds=SOURCES_REFRESH_SECONDS), id="sources")
    scheduler.add_job(
        escalation_job,
        IntervalTrigger(minutes=settings.escalation_interval_minutes),
        args=[settings],
        id="escalation",
        next_run_time=now,
    )
    scheduler.add_job(  # the queue a killed pass, a push or a backfill left: assessed within seconds
        assessment_job,
        IntervalTrigger(seconds=settings.assessment_interval_seconds),
        args=[settings],
        id="assessment",
        next_run_time=now,
    )
    scheduler.add_job(
        rescore_check_job,
        IntervalTrigger(seconds=settings.rescore_check_seconds),
        args=[settings],
        id="rescore",
        next_run_time=now,  # a rule changed while no scheduler ran is picked up at once
    )
    scheduler.add_job(  # push channel health: recovery of gaps, missed heartbeats, Subscriptions in error
        subscriptions_job,
        IntervalTrigger(seconds=SUBSCRIPTION_CHECK_SECONDS),
        args=[settings],
        id="subscriptions",
    )
    if heartbeat is not None:
        scheduler.add_job(
            heartbeat,
            IntervalTrigger(seconds=settings.scheduler_heartbeat_seconds),
            id="heartbeat",
            executor="heartbeat",
        )
    return scheduler


def run_polling_forever(only: str | None = None) -> None:
    """Poll now, then at each source's interval until stopped (the `sync` command)."""
    scheduler = BlockingScheduler(timezone="UTC")
    for name in add_poll_jobs(scheduler, only):
        poll_job(name)
    scheduler.start()
