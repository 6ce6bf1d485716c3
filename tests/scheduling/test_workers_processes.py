"""Real `discharge-bridge worker` processes on PostgreSQL: the worker polling a source is killed with
-9 in the middle of its pass; the other worker takes the source over within one lease period (2 s
here) plus a tick, is stopped with SIGTERM in the middle of its own pass, finishes it and releases
the source, and the data ends as complete as a run never interrupted."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from discharge_bridge.config import Settings
from discharge_bridge.db import make_engine
from discharge_bridge.ingest.models import EncounterSnapshot
from discharge_bridge.scheduling.models import SourceLease
from discharge_bridge.scheduling.workers import PassRecord, overlapping_passes
from discharge_bridge.sources.models import SyncRun, SyncStatus
from tests.assessment.crash import CLI, add_file_source, cli_env, outcome, run_sync, write_hospital
from tests.support.postgres import PostgresServer

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

RESOURCES = 1500
LEASE_SECONDS = 2
TICK_SECONDS = 0.2


def _until(check: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def _start_worker(settings: Settings, record: Path, log: Path) -> subprocess.Popen[bytes]:
    env = cli_env(
        settings,
        DISCHARGE_BRIDGE_POLL_BY="workers",
        DISCHARGE_BRIDGE_WORKER_LEASE_SECONDS=str(LEASE_SECONDS),
        DISCHARGE_BRIDGE_WORKER_TICK_SECONDS=str(TICK_SECONDS),
        DISCHARGE_BRIDGE_SYNC_PAGE_SIZE="5",  # a long pass of many small pages: the kill lands inside it
        DISCHARGE_BRIDGE_LOG_LEVEL="INFO",
    )
    with log.open("wb") as out:
        return subprocess.Popen([CLI, "worker", "--record", str(record)], env=env, stdout=out, stderr=subprocess.STDOUT)


def _holder(engine: Engine) -> str | None:
    with Session(engine) as session:
        lease = session.exec(select(SourceLease)).first()
        return lease.holder if lease is not None else None


def _runs(engine: Engine) -> list[SyncRun]:
    with Session(engine) as session:
        return list(session.exec(select(SyncRun).order_by(SyncRun.id)))  # type: ignore[arg-type]


def _encounters(engine: Engine) -> int:
    with Session(engine) as session:
        return len(session.exec(select(EncounterSnapshot.id)).all())


def _records(path: Path) -> list[PassRecord]:
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().splitlines():
        row = orjson.loads(line)
        out.append(
            PassRecord(
                row["source"],
                row["worker"],
                datetime.fromisoformat(row["started_at"]),
                datetime.fromisoformat(row["finished_at"]),
            )
        )
    return out


def _settings(server: PostgresServer, folder: Path) -> Settings:
    return Settings(data_dir=folder, database_url=server.url(server.create_database(migrated=True)))


def test_a_killed_workers_source_is_taken_over_within_a_lease_and_ends_complete(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    killed, clean = _settings(postgres_server, tmp_path / "killed"), _settings(postgres_server, tmp_path / "clean")
    folder = tmp_path / "ehr"
    write_hospital(folder, RESOURCES)
    engine, clean_engine = make_engine(killed.sqlalchemy_url), make_engine(clean.sqlalchemy_url)
    add_file_source(engine, folder)
    add_file_source(clean_engine, folder)
    run_sync(clean)  # what an uninterrupted pass leaves
    expected = outcome(clean_engine)
    assert expected["cases"] and not expected["duplicated_cases"] and expected["queued"] == 0

    procs = {n: _start_worker(killed, tmp_path / f"w{n}.jsonl", tmp_path / f"w{n}.log") for n in (1, 2)}
    try:
        # One of them takes the source and is some pages into its pass.
        _until(lambda: _encounters(engine) >= 30, "a pass under way")
        holder = _holder(engine)
        assert holder is not None
        first = next(n for n, p in procs.items() if holder.endswith(f":{p.pid}"))
        other = 2 if first == 1 else 1
        assert _records(tmp_path / f"w{other}.jsonl") == []  # renewed while it ran: not taken meanwhile
        procs[first].send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        procs[first].wait(10)
        assert [r.status for r in _runs(engine)] == [SyncStatus.running]  # killed mid-pass
        assert _encounters(engine) < len(expected["risks"])
        assert _holder(engine) == holder  # a killed worker releases nothing: its lease must expire

        _until(lambda: _holder(engine) == f"{holder.rsplit(':', 1)[0]}:{procs[other].pid}", "the take-over", 30)
        taken_after = time.monotonic() - killed_at
        assert taken_after <= LEASE_SECONDS + TICK_SECONDS + 1.0, taken_after  # + 1 s for a busy machine

        # SIGTERM in the middle of the new pass: no new source is taken, the pass ends, the lease is released.
        assert _records(tmp_path / f"w{other}.jsonl") == []
        procs[other].send_signal(signal.SIGTERM)
        assert procs[other].wait(300) == 0
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)

    records = _records(tmp_path / f"w{other}.jsonl")
    assert [r.source for r in records] == ["city"]
    assert overlapping_passes(records) == []
    assert _holder(engine) is None  # released after the pass
    runs = _runs(engine)
    assert [r.status for r in runs] == [SyncStatus.failed, SyncStatus.ok]  # the killed pass is not left running
    assert runs[0].error is not None and runs[0].error.startswith("interrupted") and runs[0].finished_at is not None
    assert outcome(engine) == expected
    for e in (engine, clean_engine):
        e.dispose()
