"""Workers that share the sources: each source is polled by one worker at a time, under a lease.

Run any number of ``discharge-bridge worker`` processes on one PostgreSQL database with
``DISCHARGE_BRIDGE_POLL_BY=workers`` (the scheduler leader then leaves polling to them and keeps the
morning lists, escalation, re-scoring and push health). A worker takes up to ``concurrency`` due
sources, runs each one's pass (``jobs.poll_job``, the scheduler's own poll job), releases it with its
next due time, and drains the assessment queue of every source between passes.

The lease is a row per source in ``source_lease``. A source is *due* when ``next_due_at`` has come
and *free* when it has no holder or its ``expires_at`` is past (the holder died, or lost the
database for a whole lease). A pass that merely runs long keeps its source: the heartbeat renews it. A worker
takes free, due rows in one statement::

    UPDATE source_lease SET holder = :me, acquired_at = :now, expires_at = :now + lease
    WHERE source_id IN (SELECT source_id ... due AND free ORDER BY next_due_at LIMIT :k
                        FOR UPDATE OF source_lease SKIP LOCKED)
      AND due AND free
    RETURNING source_id

PostgreSQL: the sub-select locks the rows it picks and skips rows another worker is taking at that
instant; a row another worker took and committed meanwhile is re-checked against its newest version
once locked and fails "free", so two workers never both get it. SQLite (one writer at a time): the
statement runs whole under the database's write lock, so the conditional UPDATE is atomic without row
locks (SQLAlchemy renders no ``FOR UPDATE`` there).

While a pass runs, a heartbeat thread renews the worker's leases every third of the lease. A worker
killed with -9 stops renewing: its leases expire and another worker takes the sources at its next
tick, so a source is taken over within one lease period plus one tick. Time is each worker's clock
(``clock.utcnow``): hosts must agree within a small part of the lease (NTP does).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Table, and_, exists, literal, or_, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from discharge_bridge.clock import utcnow
from discharge_bridge.config import Settings
from discharge_bridge.db import get_engine, insert_for, session_scope
from discharge_bridge.scheduling.jobs import assessment_job, describe, poll_job
from discharge_bridge.scheduling.leader import holder_name
from discharge_bridge.scheduling.models import SourceLease
from discharge_bridge.sources.models import Source
from discharge_bridge.subscriptions.service import safety_poll_interval

log = logging.getLogger(__name__)

_LEASE: Table = SourceLease.__table__  # type: ignore[attr-defined]
_SOURCE: Table = Source.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class PassRecord:
    """One pass a worker ran: which source, by whom, from when to when (UTC)."""

    source: str
    worker: str
    started_at: datetime
    finished_at: datetime


def overlapping_passes(records: Iterable[PassRecord]) -> list[tuple[PassRecord, PassRecord]]:
    """Pairs of passes over one source whose times overlap: none, when the leases do their work."""
    by_source: dict[str, list[PassRecord]] = {}
    for record in records:
        by_source.setdefault(record.source, []).append(record)
    clashes: list[tuple[PassRecord, PassRecord]] = []
    for passes in by_source.values():
        passes.sort(key=lambda r: r.started_at)
        clashes += [(a, b) for a, b in itertools.pairwise(passes) if b.started_at < a.finished_at]
    return clashes


def _free(now: datetime) -> ColumnElement[bool]:
    return or_(_LEASE.c.holder.is_(None), _LEASE.c.expires_at.is_(None), _LEASE.c.expires_at <= now)


def _seed(session: Session, now: datetime) -> None:
    """A lease row, due now, for each enabled source that has none yet (a new source is polled at once)."""
    rows = select(_SOURCE.c.id, literal(now, type_=_LEASE.c.next_due_at.type)).where(
        _SOURCE.c.enabled.is_(True), ~exists().where(_LEASE.c.source_id == _SOURCE.c.id)
    )
    stmt = insert_for(session, _LEASE).from_select(["source_id", "next_due_at"], rows).on_conflict_do_nothing()
    session.execute(stmt)


def acquire_leases(
    engine: Engine, holder: str, limit: int, lease_seconds: float, *, now: datetime | None = None
) -> list[int]:
    """Take up to ``limit`` free, due sources (the longest due first) for ``holder``; returns their ids."""
    if limit <= 0:
        return []
    now = now or utcnow()
    due = and_(_LEASE.c.next_due_at <= now, _free(now))
    with session_scope(engine) as session:
        _seed(session, now)
        pick = (
            select(_LEASE.c.source_id)
            .join(_SOURCE, _SOURCE.c.id == _LEASE.c.source_id)
            .where(_SOURCE.c.enabled.is_(True), due)
            .order_by(_LEASE.c.next_due_at, _LEASE.c.source_id)
            .limit(limit)
            .with_for_update(of=_LEASE, skip_locked=True)
        )
        taken = session.execute(
            update(_LEASE)
            .where(_LEASE.c.source_id.in_(pick.scalar_subquery()), due)
            .values(holder=holder, acquired_at=now, expires_at=now + timedelta(seconds=lease_seconds))
            .returning(_LEASE.c.source_id)
        )
        return sorted(int(row[0]) for row in taken)


def renew_leases(
    engine: Engine, holder: str, source_ids: set[int], lease_seconds: float, *, now: datetime | None = None
) -> set[int]:
    """Push the expiry of ``holder``'s leases on ``source_ids`` on; returns the ids still held."""
    if not source_ids:
        return set()
    now = now or utcnow()
    with session_scope(engine) as session:
        kept = session.execute(
            update(_LEASE)
            .where(_LEASE.c.source_id.in_(sorted(source_ids)), _LEASE.c.holder == holder)
            .values(expires_at=now + timedelta(seconds=lease_seconds))
            .returning(_LEASE.c.source_id)
        )
        return {int(row[0]) for row in kept}


def release_lease(engine: Engine, holder: str, source_id: int, *, now: datetime | None = None) -> bool:
    """Free the source and make it due again after its poll interval; False if ``holder`` had lost it."""
    now = now or utcnow()
    with session_scope(engine) as session:
        source = session.get(Source, source_id)
        interval = safety_poll_interval(session, source) if source is not None else 0
        done = session.execute(
            update(_LEASE)
            .where(_LEASE.c.source_id == source_id, _LEASE.c.holder == holder)
            .values(holder=None, expires_at=None, next_due_at=now + timedelta(seconds=interval))
        )
        return bool(done.rowcount)  # type: ignore[attr-defined]


class Worker:
    """One worker process's loop: lease due sources, poll them, release them, drain the queue."""

    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine | None = None,
        holder: str | None = None,
        concurrency: int | None = None,
        on_pass: Callable[[PassRecord], None] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine or get_engine(settings)
        self.holder = holder or holder_name()
        self.concurrency = concurrency or settings.worker_concurrency
        self.lease_seconds = float(settings.worker_lease_seconds)
        self.tick = float(settings.worker_tick_seconds)
        self.on_pass = on_pass
        self.passes = 0
        self._held: set[int] = set()
        self._held_guard = threading.Lock()
        self._stop = threading.Event()

    def stop(self) -> None:
        """Take no more sources; the passes in hand finish and release theirs (safe from a signal handler)."""
        self._stop.set()

    def run(self, *, once: bool = False) -> int:
        """Poll due sources until ``stop()`` (or, with ``once``, until none is due); returns the passes run."""
        beating = threading.Event()
        heart = threading.Thread(target=self._heartbeat, args=(beating,), name="worker-leases", daemon=True)
        heart.start()
        running: dict[Future[None], int] = {}
        try:
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="worker-pass") as pool:
                while not self._stop.is_set():
                    taken = self._take(self.concurrency - len(running))
                    for source_id, name in taken:
                        running[pool.submit(self._pass, source_id, name)] = source_id
                    if not running:
                        assessment_job(self.settings)  # a push, a backfill or a killed pass left these
                        if once and not taken:
                            break
                        if not taken:
                            self._stop.wait(self.tick)
                        continue
                    done, _ = wait(running, timeout=self.tick, return_when=FIRST_COMPLETED)
                    for future in done:
                        del running[future]
                    if done:
                        assessment_job(self.settings)
                # stopping: the pool's exit waits for the passes in hand; each releases its source
        finally:
            beating.set()
            heart.join(5)
        return self.passes

    def _take(self, room: int) -> list[tuple[int, str]]:
        if room <= 0 or self._stop.is_set():
            return []
        try:
            ids = acquire_leases(self.engine, self.holder, room, self.lease_seconds)
            if not ids:
                return []
            with self._held_guard:
                self._held.update(ids)
            with session_scope(self.engine) as session:
                rows = session.execute(select(_SOURCE.c.id, _SOURCE.c.name).where(_SOURCE.c.id.in_(ids)))
                names: dict[int, str] = {int(row[0]): str(row[1]) for row in rows}
        except Exception as exc:  # the database is away: try again at the next tick
            log.error("worker %s: no sources taken: %s", self.holder, describe(exc))
            return []
        return [(source_id, names[source_id]) for source_id in ids if source_id in names]

    def _pass(self, source_id: int, name: str) -> None:
        started = utcnow()
        try:
            poll_job(name, self.settings)  # isolated: a failure is recorded on the source, never raised
        finally:
            finished = utcnow()
            with self._held_guard:
                self._held.discard(source_id)
            try:
                if not release_lease(self.engine, self.holder, source_id, now=finished):
                    log.warning("worker %s: lease on %s had expired before the pass ended", self.holder, name)
            except Exception as exc:  # not released: it expires and is taken again after one lease period
                log.error("worker %s: lease on %s not released: %s", self.holder, name, describe(exc))
            self.passes += 1
            if self.on_pass is not None:
                self.on_pass(PassRecord(name, self.holder, started, finished))

    def _heartbeat(self, done: threading.Event) -> None:
        """Renew the leases in hand every third of a lease, so a long pass keeps its source."""
        every = max(self.lease_seconds / 3, 0.1)
        while not done.wait(every):
            with self._held_guard:
                held = set(self._held)
            if not held:
                continue
            try:
                kept = renew_leases(self.engine, self.holder, held, self.lease_seconds)
            except Exception as exc:  # the database is away: the leases may expire; the passes go on
                log.warning("worker %s: leases not renewed: %s", self.holder, describe(exc))
                continue
            with self._held_guard:
                lost = (held - kept) & self._held
            if lost:
                log.warning("worker %s: %d leases were taken over while their passes ran", self.holder, len(lost))
