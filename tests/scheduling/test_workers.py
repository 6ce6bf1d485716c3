"""Workers that share the sources (scheduling/workers.py): a source is held by one worker at a time,
a lease that expires is taken over, a released source waits for its interval, and the scheduler
leaves polling to the workers when they poll. On SQLite and PostgreSQL; the concurrent tests on
PostgreSQL (FOR UPDATE SKIP LOCKED), where workers really race."""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import time_machine
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from discharge_bridge.cli import app
from discharge_bridge.clock import utcnow
from discharge_bridge.config import Settings, get_settings
from discharge_bridge.connections.service import update_source
from discharge_bridge.db import make_engine, session_scope
from discharge_bridge.ingest.models import EncounterSnapshot
from discharge_bridge.scheduling import workers
from discharge_bridge.scheduling.leader import holder_name
from discharge_bridge.scheduling.models import SourceLease
from discharge_bridge.scheduling.scheduler import build_scheduler
from discharge_bridge.scheduling.workers import (
    PassRecord,
    Worker,
    acquire_leases,
    overlapping_passes,
    release_lease,
    renew_leases,
)
from discharge_bridge.sources.models import Source
from tests.assessment.crash import add_file_source, write_hospital
from tests.support.db import migrated_sqlite
from tests.support.factories import make_source
from tests.support.postgres import PostgresServer

_LEASE = SourceLease.__table__  # type: ignore[attr-defined]
T0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
LEASE = 60


def _sources(engine: Engine, *names: str) -> dict[str, int]:
    with session_scope(engine) as session:
        return {name: int(make_source(session, name).id or 0) for name in names}


def _lease(engine: Engine, source_id: int) -> SourceLease:
    with Session(engine) as session:
        lease = session.get(SourceLease, source_id)
        assert lease is not None
        return lease


@pytest.mark.clock
def test_a_source_is_held_by_one_worker_until_released_then_waits_for_its_interval(engine: Engine) -> None:
    ids = _sources(engine, "a", "b")
    with session_scope(engine) as session:
        update_source(session, "b", {"poll_interval_seconds": 120})
    with time_machine.travel(T0, tick=False):
        assert acquire_leases(engine, "w1:1", 5, 600) == sorted(ids.values())  # new sources are due at once
        assert acquire_leases(engine, "w2:2", 5, LEASE) == []  # held, not expired
        lease = _lease(engine, ids["b"])
        assert (lease.holder, lease.acquired_at, lease.expires_at) == ("w1:1", T0, T0 + timedelta(seconds=600))

        assert release_lease(engine, "w1:1", ids["b"])
        lease = _lease(engine, ids["b"])
        assert (lease.holder, lease.expires_at, lease.next_due_at) == (None, None, T0 + timedelta(seconds=120))
        assert not release_lease(engine, "w2:2", ids["a"])  # only the holder releases
        assert _lease(engine, ids["a"]).holder == "w1:1"
        assert acquire_leases(engine, "w2:2", 5, LEASE) == []  # b is free but not due yet
    with time_machine.travel(T0 + timedelta(seconds=120), tick=False):
        assert acquire_leases(engine, "w2:2", 5, LEASE) == [ids["b"]]  # a: still held by w1


@pytest.mark.clock
def test_an_expired_lease_is_taken_over_and_its_old_holder_learns_it_lost_it(engine: Engine) -> None:
    ids = _sources(engine, "a")
    with time_machine.travel(T0, tick=False):
        assert acquire_leases(engine, "dead:1", 1, LEASE) == [ids["a"]]
    with time_machine.travel(T0 + timedelta(seconds=LEASE - 1), tick=False):
        assert acquire_leases(engine, "live:2", 1, LEASE) == []  # one second left
    with time_machine.travel(T0 + timedelta(seconds=LEASE), tick=False):
        assert acquire_leases(engine, "live:2", 1, LEASE) == [ids["a"]]
        assert renew_leases(engine, "dead:1", {ids["a"]}, LEASE) == set()
        assert not release_lease(engine, "dead:1", ids["a"])
        assert _lease(engine, ids["a"]).holder == "live:2"


@pytest.mark.clock
def test_renewing_keeps_a_long_pass_its_source(engine: Engine) -> None:
    ids = _sources(engine, "a")
    with time_machine.travel(T0, tick=False):
        acquire_leases(engine, "w1:1", 1, LEASE)
    with time_machine.travel(T0 + timedelta(seconds=LEASE - 5), tick=False):
        assert renew_leases(engine, "w1:1", {ids["a"]}, LEASE) == {ids["a"]}
    with time_machine.travel(T0 + timedelta(seconds=LEASE + 30), tick=False):
        assert acquire_leases(engine, "w2:2", 1, LEASE) == []


def test_a_worker_renews_its_lease_while_a_long_pass_runs(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass three times as long as the lease: the heartbeat keeps the source; released at the end."""
    ids = _sources(engine, "slow")
    settings = settings.model_copy(update={"worker_lease_seconds": 1, "worker_tick_seconds": 0.05})
    started, finish = threading.Event(), threading.Event()

    def long_pass(name: str, settings: Settings | None = None) -> None:
        started.set()
        finish.wait(30)

    monkeypatch.setattr(workers, "poll_job", long_pass)  # the pass itself is not what is tested here
    worker = Worker(settings, engine=engine, holder="slow:1")
    thread = threading.Thread(target=worker.run, kwargs={"once": True})
    thread.start()
    try:
        assert started.wait(30)
        until = time.monotonic() + 3
        while time.monotonic() < until:
            assert acquire_leases(engine, "thief:2", 1, 1) == []
            time.sleep(0.1)
    finally:
        finish.set()
        thread.join(30)
    assert not thread.is_alive() and worker.passes == 1
    assert _lease(engine, ids["slow"]).holder is None


def test_a_disabled_or_removed_source_is_not_taken(engine: Engine) -> None:
    ids = _sources(engine, "a", "b")
    with session_scope(engine) as session:
        update_source(session, "a", {"enabled": False})
    assert acquire_leases(engine, "w1:1", 5, LEASE) == [ids["b"]]
    with session_scope(engine) as session:
        source = session.get(Source, ids["b"])
        session.delete(source)
    with Session(engine) as session:
        assert session.get(SourceLease, ids["b"]) is None  # ON DELETE CASCADE


def test_the_scheduler_leaves_polling_to_the_workers_when_they_poll(settings: Settings, engine: Engine) -> None:
    _sources(engine, "msk", "nyc")
    for poll_by, polls in (("scheduler", {"poll:msk", "poll:nyc"}), ("workers", set())):
        scheduler = build_scheduler(settings.model_copy(update={"poll_by": poll_by}), heartbeat=lambda: None)
        scheduler.start(paused=True)
        try:
            jobs = {j.id for j in scheduler.get_jobs()}
        finally:
            scheduler.shutdown(wait=False)
        assert {j for j in jobs if j.startswith("poll:")} == polls, poll_by
        # the leader keeps everything else: morning lists, escalation, queue, re-scoring, push health
        assert jobs - polls == {
            "morning:msk",
            "morning:nyc",
            "sources",
            "escalation",
            "assessment",
            "rescore",
            "subscriptions",
            "heartbeat",
        }


@pytest.fixture
def postgres(postgres_server: PostgresServer, tmp_path: Path) -> Iterator[tuple[Settings, Engine]]:
    url = postgres_server.url(postgres_server.create_database(migrated=True))
    engine = make_engine(url)
    yield Settings(data_dir=tmp_path / "data", database_url=url), engine
    engine.dispose()


@pytest.mark.postgres
def test_racing_workers_never_hold_one_source_at_once(postgres: tuple[Settings, Engine]) -> None:
    _, engine = postgres
    _sources(engine, *(f"s{i}" for i in range(12)))
    holders: dict[int, str] = {}
    guard = threading.Lock()
    clashes: list[tuple[int, str, str]] = []
    takes: Counter[str] = Counter()
    failures: list[BaseException] = []
    until = time.monotonic() + 5

    def race(n: int) -> None:
        me, rng = f"racer:{n}", random.Random(n)
        try:
            while time.monotonic() < until:
                got = acquire_leases(engine, me, 3, LEASE)
                with guard:
                    for sid in got:
                        if sid in holders:
                            clashes.append((sid, holders[sid], me))
                        holders[sid] = me
                        takes[me] += 1
                time.sleep(rng.random() * 0.005)
                for sid in got:
                    with guard:
                        del holders[sid]
                    assert release_lease(engine, me, sid)
                    with session_scope(engine) as session:  # due again at once: the racers fight over it again
                        session.execute(
                            update(_LEASE)
                            .where(_LEASE.c.source_id == sid, _LEASE.c.holder.is_(None))
                            .values(next_due_at=utcnow() - timedelta(seconds=1))
                        )
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=race, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures, failures
    assert clashes == []
    assert sum(takes.values()) > 100 and len(takes) == 8, takes  # they did race, all of them


@pytest.mark.postgres
def test_two_workers_share_the_sources_and_poll_each_once(postgres: tuple[Settings, Engine], tmp_path: Path) -> None:
    settings, engine = postgres
    settings = settings.model_copy(update={"poll_by": "workers", "worker_tick_seconds": 0.1})
    names = [f"h{i}" for i in range(6)]
    for name in names:
        write_hospital(tmp_path / name, 150)
        add_file_source(engine, tmp_path / name, name=name)
    records: list[PassRecord] = []
    workers = [Worker(settings, engine=engine, holder=f"w{n}:1", on_pass=records.append) for n in (1, 2)]
    threads = [threading.Thread(target=w.run, kwargs={"once": True}) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not any(t.is_alive() for t in threads)
    assert sorted(r.source for r in records) == names  # each source once: released, it waits for its interval
    assert overlapping_passes(records) == []
    with Session(engine) as session:
        stored = {sid for sid in session.exec(select(EncounterSnapshot.source_id))}
        leases = session.exec(select(SourceLease)).all()
    assert len(stored) == len(names)
    assert all(lease.holder is None and lease.next_due_at > lease.acquired_at for lease in leases if lease.acquired_at)


def test_the_worker_command_polls_each_due_source_once_and_records_its_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`discharge-bridge worker --once` on the embedded default (SQLite): every due source polled
    once, each pass recorded, every lease released with the source's next due time."""
    monkeypatch.setenv("DISCHARGE_BRIDGE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DISCHARGE_BRIDGE_POLL_BY", "workers")
    monkeypatch.setenv("DISCHARGE_BRIDGE_WORKER_TICK_SECONDS", "0.1")
    monkeypatch.delenv("DISCHARGE_BRIDGE_DATABASE_URL", raising=False)
    root, handlers, level = logging.getLogger(), list(logging.getLogger().handlers), logging.getLogger().level
    handlers_before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    get_settings.cache_clear()
    try:
        settings = migrated_sqlite(tmp_path / "data")  # a copy of the migrated template
        assert settings.sqlalchemy_url == get_settings().sqlalchemy_url
        engine = make_engine(settings.sqlalchemy_url)
        for name in ("h1", "h2"):
            write_hospital(tmp_path / name, 80)
            add_file_source(engine, tmp_path / name, name=name)
        record = tmp_path / "passes.jsonl"
        result = CliRunner().invoke(app, ["worker", "--once", "--concurrency", "2", "--record", str(record)])
        assert result.exit_code == 0, result.output
        rows = [orjson.loads(line) for line in record.read_bytes().splitlines()]
        assert sorted(row["source"] for row in rows) == ["h1", "h2"]
        assert {row["worker"] for row in rows} == {holder_name()}
        with Session(engine) as session:
            leases = session.exec(select(SourceLease)).all()
            assert len(session.exec(select(EncounterSnapshot.id)).all()) > 0
        assert [(lease.holder, lease.expires_at) for lease in leases] == [(None, None)] * 2
        assert all(
            lease.next_due_at > lease.acquired_at + timedelta(seconds=299) for lease in leases if lease.acquired_at
        )
        engine.dispose()
    finally:
        get_settings.cache_clear()
        root.handlers[:] = handlers
        root.setLevel(level)
        for signum, handler in handlers_before.items():
            signal.signal(signum, handler)
