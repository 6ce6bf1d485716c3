"""Exactly one scheduler leader per database, and the lease row that shows it is alive.

PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock(LOCK_KEY)``) held on a dedicated
connection for as long as the process leads. The server drops it when that connection ends, so a
leader killed with -9 frees it at once and a waiting process takes over at its next try. Advisory
locks are per database: two deployments on one server do not block each other.

SQLite (the embedded default): an exclusive ``fcntl.flock`` on a file beside the database, which
the kernel releases when the process dies.

The leader also upserts ``SchedulerLease(name="scheduler")`` when it takes over and at every
heartbeat; ``/readyz`` reports the scheduler as stale when that heartbeat is older than
``scheduler_stale_seconds``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol

from sqlalchemy import Table
from sqlalchemy.engine import Engine
from sqlmodel import Session

from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope, utcnow
from discharge_bridge.ingest.store import insert_for
from discharge_bridge.scheduling.models import SchedulerLease

log = logging.getLogger(__name__)

LEASE_NAME = "scheduler"
# Any constant 64-bit key works; this one spells "dbsched1" so it is recognisable in pg_locks
# (classid = 1684173667, objid = 1751475249 for the two 32-bit halves).
LOCK_KEY = int.from_bytes(b"dbsched1", "big")
_LEASE: Table = SchedulerLease.__table__  # type: ignore[attr-defined]


def heartbeat_age(session: Session, now: datetime) -> float | None:
    """Seconds since the leader's last heartbeat; None when no scheduler has ever led."""
    lease = session.get(SchedulerLease, LEASE_NAME)
    return None if lease is None else max((now - lease.heartbeat_at).total_seconds(), 0.0)


def holder_name() -> str:
    """host:pid of this process, as written to the lease row."""
    return f"{socket.gethostname()}:{os.getpid()}"


class LeaderLock(Protocol):
    def try_acquire(self) -> bool:
        """Take the lock if free; never blocks. May raise when the database is unreachable."""

    def still_held(self) -> bool:
        """False once the lock is gone (the lock's connection died, the lock file was replaced)."""

    def release(self) -> None: ...


class PostgresLeaderLock:
    """A session advisory lock on its own autocommit connection (not from the engine's pool)."""

    def __init__(self, engine: Engine) -> None:
        self._conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._conn: Any = None
        self._held = False

    def _connect(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed:
            # Keepalives notice a dead link to the server within ~30 s instead of hours.
            self._conn = psycopg.connect(
                self._conninfo,
                autocommit=True,
                connect_timeout=10,
                keepalives=1,
                keepalives_idle=10,
                keepalives_interval=5,
                keepalives_count=3,
                application_name="discharge-bridge scheduler",
            )
        return self._conn

    def try_acquire(self) -> bool:
        conn = self._connect()
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
        self._held = bool(row and row[0])
        return self._held

    def still_held(self) -> bool:
        if not self._held or self._conn is None:
            return False
        try:
            self._conn.execute("SELECT 1").fetchone()
        except Exception:  # any failure of this connection means the server dropped our session and the lock
            self._held = False
            return False
        return True

    def release(self) -> None:
        conn, self._conn, held, self._held = self._conn, None, self._held, False
        if conn is None:
            return
        try:
            if held and not conn.closed:
                conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        except Exception:  # closing the connection releases it anyway
            log.debug("advisory unlock failed; closing the connection releases the lock")
        finally:
            conn.close()


class FileLeaderLock:
    """An exclusive flock on ``path``; released by the kernel when the process exits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{holder_name()}\n")
        handle.flush()
        self._file = handle
        return True

    def still_held(self) -> bool:
        if self._file is None:
            return False
        # Someone deleting the file would let a second process lock a new one under the same name.
        try:
            return os.stat(self.path).st_ino == os.fstat(self._file.fileno()).st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def lock_for(settings: Settings, engine: Engine) -> LeaderLock:
    """The advisory lock on PostgreSQL; a lock file beside the SQLite database otherwise."""
    if engine.dialect.name == "postgresql":
        return PostgresLeaderLock(engine)
    database = engine.url.database
    if database and database != ":memory:":
        return FileLeaderLock(Path(database).with_name(Path(database).name + ".scheduler.lock"))
    return FileLeaderLock(settings.data_dir / "scheduler.lock")


def write_lease(engine: Engine, holder: str, *, taking_over: bool = False, now: datetime | None = None) -> None:
    """Upsert the lease row: holder and heartbeat, and ``acquired_at`` when ``taking_over``."""
    now = now or utcnow()
    with session_scope(engine) as session:
        stmt = insert_for(session, _LEASE).values(name=LEASE_NAME, holder=holder, acquired_at=now, heartbeat_at=now)
        set_: dict[str, Any] = {"holder": stmt.excluded.holder, "heartbeat_at": stmt.excluded.heartbeat_at}
        if taking_over:
            set_["acquired_at"] = stmt.excluded.acquired_at
        session.execute(stmt.on_conflict_do_update(index_elements=["name"], set_=set_))


def current_lease(engine: Engine) -> SchedulerLease | None:
    with Session(engine) as session:
        return session.get(SchedulerLease, LEASE_NAME)


def wait_for_leadership(
    lock: LeaderLock,
    stop: threading.Event,
    *,
    poll_seconds: float,
    on_wait: Callable[[], None] | None = None,
) -> bool:
    """Try the lock every ``poll_seconds`` until it is ours (True) or ``stop`` is set (False).

    ``on_wait`` is called once, when the first try finds another leader. An unreachable database
    is logged and tried again: the scheduler waits for it like for another leader.
    """
    told = failing = False
    while not stop.is_set():
        try:
            if lock.try_acquire():
                return True
        except Exception as exc:  # the database is down or refusing: keep trying
            if not failing:
                log.warning("scheduler lock: cannot reach the database (%s); retrying", type(exc).__name__)
            failing = True
        else:
            failing = False
            if not told and on_wait is not None:
                on_wait()
            told = True
        stop.wait(poll_seconds)
    return False
