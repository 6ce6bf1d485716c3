"""Two real `discharge-bridge scheduler` processes on one database never both lead: the second waits,
takes over when the first is killed with -9, and each hospital's morning list is built once.
PostgreSQL (advisory lock) and SQLite (lock file)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from discharge_bridge.clock import utcnow
from discharge_bridge.config import Settings
from discharge_bridge.connections.service import add_source, update_source
from discharge_bridge.db import make_engine, session_scope
from discharge_bridge.scheduling.leader import LOCK_KEY, current_lease
from discharge_bridge.worklists.models import MorningList
from tests.support.clock import child_env
from tests.support.db import migrated_sqlite
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.slow
CLI = str(Path(sys.executable).with_name("discharge-bridge"))
ZONES = {"msk": "Europe/Moscow", "nyc": "America/New_York"}


def _until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Settings, Engine, str | None]]:
    dsn = None
    url = None
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        name = server.create_database(migrated=True)
        url, dsn = server.url(name), server.dsn(name)
    settings = Settings(data_dir=tmp_path / "data", database_url=url) if url else migrated_sqlite(tmp_path / "data")
    engine = make_engine(settings.sqlalchemy_url)
    yield settings, engine, dsn
    engine.dispose()


def _hospitals_due_now(engine: Engine) -> None:
    """Two hospitals whose morning time has just passed, so a leader builds their lists at once."""
    with session_scope(engine) as session:
        for name, tz in ZONES.items():
            add_source(session, name=name, hospital=name.upper(), base_url="http://127.0.0.1:9999/fhir", timezone=tz)
            local = utcnow().astimezone(ZoneInfo(tz))
            earlier = local - timedelta(minutes=1)
            due = earlier if earlier.date() == local.date() else local.replace(hour=0, minute=0)
            update_source(session, name, {"morning_time": due.strftime("%H:%M")})


def _start(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = child_env({k: v for k, v in os.environ.items() if not k.startswith("DISCHARGE_BRIDGE_")})
    env.update(
        DISCHARGE_BRIDGE_DATA_DIR=str(settings.data_dir),
        DISCHARGE_BRIDGE_SCHEDULER_HEARTBEAT_SECONDS="1",
        DISCHARGE_BRIDGE_LOG_LEVEL="INFO",
        COLUMNS="200",
    )
    if settings.database_url:
        env["DISCHARGE_BRIDGE_DATABASE_URL"] = settings.database_url
    with log.open("wb") as out:
        return subprocess.Popen([CLI, "scheduler"], env=env, stdout=out, stderr=subprocess.STDOUT)


def _holder_pid(engine: Engine) -> int | None:
    lease = current_lease(engine)
    return int(lease.holder.rsplit(":", 1)[1]) if lease else None


def _lists(engine: Engine) -> list[tuple[int, str, str]]:
    with session_scope(engine) as session:
        rows = session.exec(select(MorningList)).all()
        return sorted((m.source_id, m.local_date, m.generated_by) for m in rows)


def _advisory_locks(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s AND objid = %s",
            (LOCK_KEY >> 32, LOCK_KEY & 0xFFFFFFFF),
        ).fetchone()
    return int(row[0]) if row else 0


def test_two_scheduler_processes_never_both_lead(database: tuple[Settings, Engine, str | None], tmp_path: Path) -> None:
    settings, engine, dsn = database
    _hospitals_due_now(engine)
    a_log, b_log = tmp_path / "a.log", tmp_path / "b.log"
    a = _start(settings, a_log)
    b: subprocess.Popen[bytes] | None = None
    try:
        _until(lambda: _holder_pid(engine) == a.pid, "the first process to lead")
        _until(lambda: len(_lists(engine)) == 2, "both morning lists")
        b = _start(settings, b_log)
        _until(lambda: "waiting to take over" in b_log.read_text(), "the second process to wait")
        assert f":{a.pid}" in b_log.read_text()  # it names the leader
        for _ in range(10):  # for a while, both alive: only a leads, and only once
            assert _holder_pid(engine) == a.pid and b.poll() is None
            if dsn:
                assert _advisory_locks(dsn) == 1
            time.sleep(0.3)
        assert "leading" not in b_log.read_text()

        a.send_signal(signal.SIGKILL)
        a.wait(10)
        _until(lambda: _holder_pid(engine) == b.pid, "the second process to take over")
        _until(lambda: "scheduler leading" in b_log.read_text(), "the second process to start its jobs")
        time.sleep(2)  # its start-up catch-up has run: the lists exist, so nothing is written twice
        lists = _lists(engine)
        assert len(lists) == 2 and len({(s, d) for s, d, _ in lists}) == 2
        assert all(by.endswith(f":{a.pid}") for _, _, by in lists), lists
        if dsn:
            assert _advisory_locks(dsn) == 1

        b.send_signal(signal.SIGTERM)
        assert b.wait(30) == 0
        assert "scheduler stopped" in b_log.read_text()
        if dsn:
            assert _advisory_locks(dsn) == 0
    finally:
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
