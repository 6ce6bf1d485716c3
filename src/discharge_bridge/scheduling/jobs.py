"""The bodies of the scheduled jobs. Each takes ids (or names) and settings and opens its own session.

A job never raises into the scheduler: ``isolated`` logs what failed (the exception kind and where,
never its message for unknown errors, which may quote SQL parameters) and the job runs again at its
next time. Per-source jobs isolate each source, so one broken hospital does not stop the others.
"""

from __future__ import annotations

import functools
import logging
import threading
import traceback
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from sqlmodel import col, select

from discharge_bridge.assessment import drain, sync_and_assess
from discharge_bridge.cases.referrals.remote import sync_remote_referrals
from discharge_bridge.cases.referrals.service import REMINDER_BATCH, raise_overdue_reminders
from discharge_bridge.cases.tasks.escalation import BATCH as ESCALATION_BATCH
from discharge_bridge.cases.tasks.escalation import escalate_overdue
from discharge_bridge.config import Settings
from discharge_bridge.db import get_engine, session_scope, utcnow
from discharge_bridge.ehr.writeback.jobs import writeback_pass
from discharge_bridge.ingest.locks import source_lock
from discharge_bridge.logs import safe_exception_text
from discharge_bridge.risk import MappingError, RuleSetError, loading
from discharge_bridge.scheduling.leader import LeaderLock, write_lease
from discharge_bridge.scheduling.rescore import rescore_if_changed
from discharge_bridge.sources.models import Source
from discharge_bridge.sources.service import SourceNotFound
from discharge_bridge.subscriptions.recovery import check_all_subscriptions
from discharge_bridge.worklists.morning import build_morning_list

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

# Errors whose messages name files, keys and source names only: worth showing whole.
_SAFE_MESSAGES = (MappingError, RuleSetError, SourceNotFound)


def describe(exc: BaseException) -> str:
    """What failed and where, without values that may be patient data (see logs.py)."""
    if isinstance(exc, _SAFE_MESSAGES):
        return f"{type(exc).__name__}: {exc}"
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else ""
    return safe_exception_text(exc) + where


def isolated(fn: Callable[P, R]) -> Callable[P, R | None]:
    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R | None:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            log.error("job %s failed: %s", fn.__name__, describe(exc))
            return None

    return run


@isolated
def poll_job(source_name: str, settings: Settings | None = None) -> None:
    """One pass; failures are recorded on the source and never stop the scheduler."""
    with source_lock(source_name):
        result = sync_and_assess(source_name, engine=get_engine(settings), settings=settings)
        log.info(
            "sync %s: %s fetched=%d new=%d updated=%d dead_letters=%d",
            source_name,
            result.status,
            result.fetched,
            result.created,
            result.updated,
            result.dead_letters,
        )
        writeback_job(source_name, settings)  # after each poll, by whoever polls (scheduler or worker)


@isolated
def writeback_job(source_name: str, settings: Settings | None = None) -> None:
    """Write the source's findings back to its EHR, when hospital IT turned that on (ehr/writeback/)."""
    done = writeback_pass(source_name, settings)
    if done is not None and (done.reconciled.created or done.reconciled.changed or done.sent.sent or done.sent.failed):
        log.info(
            "write-back %s: %d new, %d changed; %d sent, %d retrying, %d refused, %d task statuses taken",
            source_name,
            done.reconciled.created,
            done.reconciled.changed,
            done.sent.sent,
            done.sent.retrying,
            done.sent.failed,
            done.sent.applied,
        )


@isolated
def morning_job(source_id: int, settings: Settings, generated_by: str = "scheduler") -> None:
    """Build the hospital's morning list for its local date, unless it exists already."""
    rules_version = loading.rule_set(settings.mappings_dir).version
    with session_scope(get_engine(settings)) as session:
        source = session.get(Source, source_id)
        if source is None or not source.enabled:
            return
        made = build_morning_list(session, source, now=utcnow(), rules_version=rules_version, generated_by=generated_by)
        name = source.name
    if made is None:
        log.info("morning list %s: already built for today", name)
        return
    counts = made.items["counts"]
    log.info(
        "morning list %s %s: %d new flags, %d due today, %d overdue",
        name,
        made.local_date,
        counts["new_flags"],
        counts["due_today"],
        counts["overdue"],
    )


@isolated
def assessment_job(settings: Settings) -> int:
    """Drain the assessment queue of every source: what a push, a crash or another worker left there."""
    stats = drain(get_engine(settings), settings)
    if stats.patients or stats.failed:
        log.info(
            "assessment: %d queued patients done, %d cases opened, %d failed",
            stats.patients,
            stats.cases_opened,
            stats.failed,
        )
    return stats.patients


@isolated
def subscriptions_job(settings: Settings) -> None:
    """Push-channel health (gaps, missed heartbeats, Subscriptions in error), then assess what a
    recovery's catch-up poll queued."""
    check_all_subscriptions(settings=settings)
    drain(get_engine(settings), settings)


@isolated
def escalation_job(settings: Settings) -> int:
    """Escalate overdue tasks, a batch per transaction until none is left; then raise a reminder task
    for each referral whose receiver has not answered in time (cases/referrals/service.py), and
    exchange referrals with receivers that have a FHIR server (cases/referrals/remote.py)."""
    total = 0
    while True:
        with session_scope(get_engine(settings)) as session:
            count = escalate_overdue(session, now=utcnow())
        total += count
        if count < ESCALATION_BATCH:
            break
    if total:
        log.info("escalated %d overdue tasks", total)
    reminders = 0
    while True:
        with session_scope(get_engine(settings)) as session:
            count = raise_overdue_reminders(session, utcnow())
        reminders += count
        if count < REMINDER_BATCH:
            break
    if reminders:
        log.info("raised %d reminders of unanswered referrals", reminders)
    remote_referrals_job(settings)
    return total


@isolated
def remote_referrals_job(settings: Settings) -> None:
    """Referrals to receivers with a FHIR server: send the new ones, read back the Tasks of the others."""
    result = sync_remote_referrals(settings)
    if result.sent or result.updated or result.failed:
        log.info("referrals by FHIR: %d sent, %d updated, %d failed", result.sent, result.updated, result.failed)


@isolated
def rescore_check_job(settings: Settings) -> None:
    """Re-score each enabled source whose rules or mapping changed (each source on its own)."""
    engine = get_engine(settings)
    with session_scope(engine) as session:
        names = list(session.exec(select(Source.name).where(col(Source.enabled).is_(True)).order_by(col(Source.name))))
    for name in names:
        _rescore_one(engine, name, settings)


@isolated
def _rescore_one(engine: Any, name: str, settings: Settings) -> None:
    with source_lock(name):
        follow = rescore_if_changed(engine, name, settings)
    if follow is not None:
        log.info(
            "re-scored %s: %d assessed, %d flagged, %d cases opened",
            name,
            follow.scores.assessed,
            follow.scores.flagged,
            follow.cases.opened,
        )


def heartbeat_job(settings: Settings, lock: LeaderLock, holder: str, lost: threading.Event) -> None:
    """Prove the lock is still ours and say so in the lease row; flag ``lost`` otherwise."""
    if not lock.still_held():
        lost.set()
        return
    try:
        write_lease(get_engine(settings), holder)
    except Exception as exc:  # the database is away: /readyz will see a stale heartbeat, which is the truth
        log.warning("scheduler heartbeat not written: %s", describe(exc))
