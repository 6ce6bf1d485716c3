"""One scheduler leader per database: the PostgreSQL advisory lock, the SQLite lock file, the lease row,
and runners that wait, take over and step down. In one process (the two-process test is test_processes.py)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import time_machine
from sqlalchemy.engine import Engine

from discharge_bridge.config import Settings
from discharge_bridge.db import make_engine
from discharge_bridge.scheduling.leader import (
    LOCK_KEY,
    FileLeaderLock,
    PostgresLeaderLock,
    current_lease,
    lock_for,
    write_lease,
)
from discharge_bridge.scheduling.runner import SchedulerRunner
from tests.support.postgres import PostgresServer


def _until(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.1)


@pytest.fixture
def pg(postgres_server: PostgresServer) -> Iterator[tuple[Engine, str]]:
    name = postgres_server.create_database()
    engine = make_engine(postgres_server.url(name))
    yield engine, postgres_server.dsn(name)
    engine.dispose()


def _advisory_holders(dsn: str) -> list[int]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s AND objid = %s",
            (LOCK_KEY >> 32, LOCK_KEY & 0xFFFFFFFF),
        ).fetchall()
    return [r[0] for r in rows]


def test_the_lock_file_admits_one_holder_and_notices_being_replaced(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite.scheduler.lock"
    first, second = FileLeaderLock(path), FileLeaderLock(path)
    assert first.try_acquire() and first.still_held()
    assert not second.try_acquire() and not second.still_held()
    assert path.read_text().strip().endswith(f":{os.getpid()}")
    first.release()
    assert not first.still_held()
    assert second.try_acquire()
    os.unlink(path)  # someone removes the file: a third process could lock a new one, so it is not ours
    assert not second.still_held()
    second.release()


def test_lock_for_picks_the_advisory_lock_or_a_file_beside_the_database(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    lock = lock_for(settings, make_engine(settings.sqlalchemy_url))
    assert isinstance(lock, FileLeaderLock)
    assert lock.path == (tmp_path / "data" / "discharge_bridge.db.scheduler.lock").resolve()
    pg_engine = make_engine("postgresql+psycopg://u:pw@127.0.0.1:1/x")
    assert isinstance(lock_for(settings, pg_engine), PostgresLeaderLock)


@pytest.mark.postgres
def test_the_advisory_lock_admits_one_session_and_is_freed_when_it_dies(pg: tuple[Engine, str]) -> None:
    engine, dsn = pg
    first, second = PostgresLeaderLock(engine), PostgresLeaderLock(engine)
    try:
        assert first.try_acquire() and first.still_held()
        assert not second.try_acquire()
        [holder] = _advisory_holders(dsn)
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (holder,))  # the leader's connection dies
        assert not first.still_held()
        _until(second.try_acquire)
        assert second.still_held() and len(_advisory_holders(dsn)) == 1
        second.release()
        assert _advisory_holders(dsn) == []
    finally:
        first.release()
        second.release()


def test_the_lease_keeps_its_start_and_moves_its_heartbeat(engine: Engine) -> None:
    start = datetime(2026, 3, 7, 4, 0, tzinfo=UTC)
    write_lease(engine, "host-a:1", taking_over=True, now=start)
    write_lease(engine, "host-a:1", now=start + timedelta(seconds=15))
    lease = current_lease(engine)
    assert lease is not None
    assert (lease.holder, lease.acquired_at, lease.heartbeat_at) == ("host-a:1", start, start + timedelta(seconds=15))
    later = start + timedelta(minutes=5)
    write_lease(engine, "host-b:2", taking_over=True, now=later)
    lease = current_lease(engine)
    assert lease is not None and (lease.holder, lease.acquired_at, lease.heartbeat_at) == ("host-b:2", later, later)


def _runner(settings: Settings, holder: str, said: list[str]) -> SchedulerRunner:
    runner = SchedulerRunner(settings, say=said.append)
    runner.holder = holder
    runner.start_in_thread()
    return runner


def test_a_second_runner_waits_and_takes_over_when_the_first_stops(settings: Settings, engine: Engine) -> None:
    settings = settings.model_copy(update={"scheduler_heartbeat_seconds": 1})
    said_a: list[str] = []
    said_b: list[str] = []
    a = _runner(settings, "host:a", said_a)
    b: SchedulerRunner | None = None
    try:
        _until(a.leading.is_set)
        b = _runner(settings, "host:b", said_b)
        _until(lambda: any("waiting" in line for line in said_b))
        assert "another scheduler leads (host:a" in said_b[0]
        first = current_lease(engine)
        assert first is not None and first.holder == "host:a"
        _until(lambda: (lease := current_lease(engine)) is not None and lease.heartbeat_at > first.heartbeat_at)
        assert not b.leading.is_set()
        a.stop()
        _until(b.leading.is_set)
        lease = current_lease(engine)
        assert lease is not None and lease.holder == "host:b" and lease.acquired_at >= first.acquired_at
        assert not a.leading.is_set()
    finally:
        a.stop(wait=10)
        if b is not None:
            b.stop(wait=10)


@pytest.mark.postgres
def test_a_leader_whose_lock_connection_dies_steps_down(
    postgres_server: PostgresServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    name = postgres_server.create_database(migrated=True)
    settings = Settings(
        data_dir=tmp_path / "data", database_url=postgres_server.url(name), scheduler_heartbeat_seconds=1
    )
    dsn = postgres_server.dsn(name)
    engine = make_engine(settings.sqlalchemy_url)
    a = _runner(settings, "host:a", [])
    b: SchedulerRunner | None = None
    try:
        _until(a.leading.is_set)
        b = _runner(settings, "host:b", [])
        time.sleep(1.5)
        assert not b.leading.is_set()
        before = current_lease(engine)
        assert before is not None and before.holder == "host:a"
        [holder] = _advisory_holders(dsn)
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (holder,))
        # a notices at its next heartbeat, stops its jobs and competes again: whoever tries first takes
        # over (a new acquired_at), and only one of them leads.
        _until(lambda: (lease := current_lease(engine)) is not None and lease.acquired_at > before.acquired_at)
        _until(lambda: a.leading.is_set() != b.leading.is_set())
        assert len(_advisory_holders(dsn)) == 1
        assert "scheduler lock lost" in caplog.text
    finally:
        a.stop(wait=10)
        if b is not None:
            b.stop(wait=10)
        engine.dispose()


def test_time_travel_does_not_confuse_the_lease(engine: Engine) -> None:
    with time_machine.travel(datetime(2026, 3, 8, 6, 59, tzinfo=UTC), tick=False):
        write_lease(engine, "host:a", taking_over=True)
    lease = current_lease(engine)
    assert lease is not None and lease.heartbeat_at == datetime(2026, 3, 8, 6, 59, tzinfo=UTC)
