"""The scheduler process: wait to lead, run every job while leading, step down when the lock is lost.

Used in the foreground by ``discharge-bridge scheduler`` and in a background thread by ``serve`` and
``demo``; all of them take the same leader lock, so on one database only one of them runs jobs and
the others wait. When the lock is lost (PostgreSQL dropped the lock's connection), the jobs stop
and the process waits to lead again rather than run beside a new leader.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.engine import Engine

from discharge_bridge.clock import utcnow
from discharge_bridge.config import Settings
from discharge_bridge.db import get_engine
from discharge_bridge.scheduling.jobs import describe, heartbeat_job
from discharge_bridge.scheduling.leader import (
    LeaderLock,
    current_lease,
    holder_name,
    lock_for,
    wait_for_leadership,
    write_lease,
)
from discharge_bridge.scheduling.scheduler import build_scheduler

log = logging.getLogger(__name__)
MAX_WAIT_POLL_SECONDS = 5.0
# APScheduler logs every run of every job at INFO (the heartbeat each 15 s): keep its warnings only,
# unless someone configured its logger on purpose.
if logging.getLogger("apscheduler").level == logging.NOTSET:
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


class SchedulerRunner:
    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine | None = None,
        lock: LeaderLock | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine or get_engine(settings)
        self.lock = lock or lock_for(settings, self.engine)
        self.holder = holder_name()
        self.say = say or log.info
        self.leading = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # A waiting process tries the lock this often: a kill -9'd leader is replaced within it.
        self.poll_seconds = min(MAX_WAIT_POLL_SECONDS, float(settings.scheduler_heartbeat_seconds))

    def stop(self, *, wait: float | None = None) -> None:
        """Ask the loop to end (safe from a signal handler); with ``wait``, join its thread that long."""
        self._stop.set()
        if wait is not None and self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(wait)

    def run(self) -> None:
        """Block until ``stop()``: lead whenever the lock is free, wait while another process leads."""
        while not self._stop.is_set():
            if not wait_for_leadership(self.lock, self._stop, poll_seconds=self.poll_seconds, on_wait=self._waiting):
                return
            try:
                self._lead()
            except Exception as exc:  # could not even build the jobs (database away): step down, try again
                log.error("scheduler stopped leading: %s", describe(exc))
                self._stop.wait(self.poll_seconds)
            finally:
                self.leading.clear()
                self.lock.release()

    def start_in_thread(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, name="discharge-bridge-scheduler", daemon=True)
        self._thread.start()
        return self._thread

    def _waiting(self) -> None:
        try:
            lease = current_lease(self.engine)
        except Exception:  # the lock answered but the table did not: still waiting, just less informative
            lease = None
        if lease is None:
            self.say("another scheduler holds the lock; waiting to take over")
            return
        age = (utcnow() - lease.heartbeat_at).total_seconds()
        self.say(f"another scheduler leads ({lease.holder}, heartbeat {age:.0f} s ago); waiting to take over")

    def _lead(self) -> None:
        write_lease(self.engine, self.holder, taking_over=True)
        lost = threading.Event()
        scheduler = build_scheduler(
            self.settings,
            heartbeat=lambda: heartbeat_job(self.settings, self.lock, self.holder, lost),
            generated_by=f"scheduler {self.holder}",
        )
        scheduler.start()
        self.leading.set()
        self.say(f"scheduler leading as {self.holder}: {len(scheduler.get_jobs())} jobs")
        try:
            while not self._stop.wait(0.5):
                if lost.is_set():
                    log.error("scheduler lock lost: jobs stopped; waiting to lead again")
                    return
        finally:
            scheduler.shutdown(wait=True)
